//! The whole client core in one process on a simulated clock, without sockets: a hub, and two
//! [`Core`]s whose real link layers (str0m) talk over a simulated UDP network, with a disk in
//! memory each. Hub, sessions, direct links and file transfers together.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kith::protocol::client::{Client, ClientConfig};
use kith::protocol::core::{Core, CoreOutput, MediaControl, Now};
use kith::protocol::events::{ClientCommand, ClientEvent, LinkKind};
use kith::protocol::hub::{Hub, HubConfig, HubOutput};
use kith::protocol::links::Links;
use kith::protocol::nat::Nat;
use kith::protocol::noise::Keypair;
use kith::protocol::transfer::{TransferConfig, Transfers};
use kith::protocol::trust::KnownPeers;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

mod sim_disk;
use sim_disk::SimDisk;

struct Node {
    core: Core,
    conn: Option<u64>,
    addr: SocketAddr,
    disk: SimDisk,
    events: Vec<ClientEvent>,
    fingerprint: String,
    /// What the core told the media layer, and the audio packets it handed it: (ts, bytes).
    media: Vec<MediaControl>,
    audio: Vec<(u64, Vec<u8>)>,
}

struct World {
    now: Now,
    keys: Vec<Keypair>,
    names: Vec<String>,
    hub_key: Keypair,
    hub: Hub,
    nodes: Vec<Node>,
    to_hub: VecDeque<(u64, Vec<u8>)>,
    to_client: VecDeque<(u64, Vec<u8>)>,
    conn_owner: HashMap<u64, usize>,
    next_conn: u64,
    /// The UDP network between the nodes drops everything (the hub still works).
    cut: bool,
}

fn hub(key: Keypair) -> Hub {
    let config = HubConfig {
        name: "sim hub".into(),
        password: Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
    };
    Hub::new(config, key, ChaCha20Rng::seed_from_u64(5))
}

/// Node `i`: a whole core with identity `key`; `run` tells its processes apart (a restart is
/// the next run: same identity, new stream, nothing in memory).
fn node(now: Now, i: usize, name: &str, key: Keypair, run: u64) -> Node {
    let config = ClientConfig {
        name: name.to_string(),
        password: Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
        hub_label: "sim".into(),
        hub_pin: None,
        accept_changed_hub_key: false,
    };
    let seed = 100 + i as u64 + 1000 * run;
    let client = Client::new(config, key, KnownPeers::default(), ChaCha20Rng::seed_from_u64(seed));
    let fingerprint = client.fingerprint().to_string();
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)), 40_000);
    let links = Links::new(vec![addr], 1 + ((i as u64) << 40) + (run << 32));
    let downloads = PathBuf::from(format!("/home/{name}/Downloads"));
    let transfers = Transfers::new(TransferConfig { downloads, auto_accept: true, max_size: u64::MAX }, seed);
    let core = Core::new(client, links, Nat::new(now.at), transfers, true);
    Node {
        core,
        conn: None,
        addr,
        disk: SimDisk::default(),
        events: Vec::new(),
        fingerprint,
        media: Vec::new(),
        audio: Vec::new(),
    }
}

impl World {
    fn new(names: &[&str]) -> Self {
        let now = Now { at: Instant::now(), unix_ms: 1_800_000_000_000 };
        let mut rng = ChaCha20Rng::seed_from_u64(41);
        let hub_key = Keypair::generate(&mut rng);
        let keys: Vec<Keypair> = names.iter().map(|_| Keypair::generate(&mut rng)).collect();
        let nodes =
            names.iter().enumerate().map(|(i, name)| node(now, i, name, keys[i].clone(), 0)).collect();
        let mut w = World {
            now,
            keys,
            names: names.iter().map(|n| n.to_string()).collect(),
            hub: hub(hub_key.clone()),
            hub_key,
            nodes,
            to_hub: VecDeque::new(),
            to_client: VecDeque::new(),
            conn_owner: HashMap::new(),
            next_conn: 1,
            cut: false,
        };
        for i in 0..names.len() {
            w.connect(i);
        }
        w
    }

    fn connect(&mut self, i: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.conn_owner.insert(conn, i);
        self.nodes[i].conn = Some(conn);
        self.hub.handle_connect(self.now.at, conn, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)));
        self.nodes[i].core.handle_hub_connected(self.now);
    }

    /// Node `i`'s hub connection breaks (the hub notices at once).
    fn drop_hub_conn(&mut self, i: usize) {
        if let Some(conn) = self.nodes[i].conn.take() {
            self.hub.handle_disconnect(self.now.at, conn);
            self.nodes[i].core.handle_hub_disconnected(self.now, "network down");
        }
    }

    /// Node `i`'s process is killed and started again: same identity and address, a fresh
    /// core and an empty disk.
    fn restart_node(&mut self, i: usize, run: u64) {
        self.drop_hub_conn(i);
        let (name, key) = (self.names[i].clone(), self.keys[i].clone());
        self.nodes[i] = node(self.now, i, &name, key, run);
        self.connect(i);
    }

    /// The hub process restarts: every connection breaks, and the new hub knows nobody.
    fn restart_hub(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].conn.take().is_some() {
                self.nodes[i].core.handle_hub_disconnected(self.now, "hub restart");
            }
        }
        self.to_hub.clear();
        self.to_client.clear();
        self.hub = hub(self.hub_key.clone());
    }

    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                let now = self.now;
                let node = &mut self.nodes[i];
                node.disk.tick(now.at);
                while let Some(done) = node.disk.done.pop_front() {
                    moved = true;
                    node.core.handle_disk(now, done);
                }
                while let Some(out) = self.nodes[i].core.poll_output() {
                    moved = true;
                    match out {
                        CoreOutput::ToHub(frame) => {
                            if let Some(conn) = self.nodes[i].conn {
                                self.to_hub.push_back((conn, frame));
                            }
                        }
                        CoreOutput::CloseHub { .. } => {
                            if let Some(conn) = self.nodes[i].conn.take() {
                                self.hub.handle_disconnect(now.at, conn);
                                self.nodes[i].core.handle_hub_disconnected(now, "closed");
                            }
                        }
                        CoreOutput::Transmit { source, destination, contents } => {
                            let to = self.nodes.iter().position(|n| n.addr == destination);
                            if let (false, Some(j)) = (self.cut, to) {
                                self.nodes[j].core.handle_datagram(now, source, destination, &contents);
                            }
                        }
                        CoreOutput::Event(e) => self.nodes[i].events.push(e),
                        CoreOutput::Disk(request) => self.nodes[i].disk.submit(now.at, request),
                        CoreOutput::Media(control) => self.nodes[i].media.push(control),
                        CoreOutput::Audio { ts, data, .. } => self.nodes[i].audio.push((ts, data)),
                        CoreOutput::Video { .. } | CoreOutput::KeyframeRequest { .. } => {}
                        CoreOutput::SaveKnownPeers(_)
                        | CoreOutput::PinHub(_)
                        | CoreOutput::ResolveServers => {}
                    }
                }
            }
            while let Some((conn, frame)) = self.to_hub.pop_front() {
                moved = true;
                self.hub.handle_frame(self.now.at, conn, &frame);
            }
            while let Some(out) = self.hub.poll_output() {
                moved = true;
                match out {
                    HubOutput::Send { conn, frame, .. } => self.to_client.push_back((conn, frame)),
                    HubOutput::Close { conn, .. } => {
                        if let Some(&i) = self.conn_owner.get(&conn)
                            && self.nodes[i].conn == Some(conn)
                        {
                            self.nodes[i].conn = None;
                            self.nodes[i].core.handle_hub_disconnected(self.now, "closed by hub");
                        }
                    }
                }
            }
            while let Some((conn, frame)) = self.to_client.pop_front() {
                moved = true;
                if let Some(&i) = self.conn_owner.get(&conn)
                    && self.nodes[i].conn == Some(conn)
                {
                    self.nodes[i].core.handle_hub_frame(self.now, &frame);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn run_until(&mut self, limit: Duration, what: &str, done: impl Fn(&World) -> bool) {
        let end = self.now.at + limit;
        loop {
            self.settle();
            if done(self) {
                return;
            }
            assert!(
                self.now.at < end,
                "no {what} within {limit:?}: parts {:?}, saved {:?}, events {:#?}",
                self.nodes
                    .iter()
                    .map(|n| n.disk.parts.values().map(Vec::len).collect::<Vec<_>>())
                    .collect::<Vec<_>>(),
                self.nodes.iter().map(|n| n.disk.saved.keys().collect::<Vec<_>>()).collect::<Vec<_>>(),
                self.nodes
                    .iter()
                    .map(|n| n.events.iter().rev().take(6).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            );
            let hub = self.hub.poll_timeout();
            let cores = self.nodes.iter().filter_map(|n| n.core.poll_timeout());
            let disks = self.nodes.iter().filter_map(|n| n.disk.busy_until);
            let next = cores.chain(disks).chain(hub).min().unwrap_or(end).min(end);
            let step = next.saturating_duration_since(self.now.at).max(Duration::from_millis(1));
            self.now = self.now.plus(step);
            self.hub.handle_timeout(self.now.at);
            for n in &mut self.nodes {
                n.core.handle_timeout(self.now);
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now.at + d;
        self.run_until(d + Duration::from_secs(1), "time passing", |w| w.now.at >= until);
    }

    fn count(&self, i: usize, pred: impl Fn(&ClientEvent) -> bool) -> usize {
        self.nodes[i].events.iter().filter(|e| pred(e)).count()
    }

    fn link_kinds(&self, i: usize) -> Vec<LinkKind> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Link { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 999) as u8).collect()
}

#[test]
fn a_transfer_carries_on_through_a_hub_restart_and_resumes_after_the_link_died() {
    let mut w = World::new(&["alice", "bob"]);
    w.run_until(Duration::from_secs(60), "direct links", |w| {
        (0..2).all(|i| w.link_kinds(i).last() == Some(&LinkKind::Direct))
    });
    // Bob's disk writes 6.4 MB/s, so the file takes (simulated) time: 10 s.
    w.nodes[1].disk.write_delay = Duration::from_millis(10);
    let data = pattern(64 * 1024 * 1024 + 77);
    let path = PathBuf::from("/home/alice/holiday.mov");
    w.nodes[0].disk.files.insert(path.clone(), data.clone());
    let bob = w.nodes[1].fingerprint.clone();
    let now = w.now;
    w.nodes[0]
        .core
        .handle_command(now, ClientCommand::SendFile { peer: bob, path: path.display().to_string() });
    let part = |w: &World| w.nodes[1].disk.parts.values().next().map_or(0, Vec::len);
    w.run_until(Duration::from_secs(30), "an eighth of the file", |w| part(w) > 8 << 20);

    // 1. The hub restarts under the transfer; alice is back first, bob 2 s later.
    w.restart_hub();
    w.advance(Duration::from_secs(3));
    w.connect(0);
    w.advance(Duration::from_secs(2));
    w.connect(1);
    w.run_until(Duration::from_secs(30), "both back on the hub", |w| {
        (0..2).all(|i| w.count(i, |e| matches!(e, ClientEvent::Reconnected { .. })) == 1)
    });
    let at_restart = part(&w);
    assert!(at_restart < data.len());
    w.run_until(Duration::from_secs(30), "4 MiB more", |w| part(w) > at_restart + (4 << 20));
    // Nobody noticed: the same sessions, the same links.
    for i in 0..2 {
        assert_eq!(w.link_kinds(i), [LinkKind::Direct], "node {i}");
        assert_eq!(w.count(i, |e| matches!(e, ClientEvent::PeerLeft { .. })), 0);
        assert_eq!(w.count(i, |e| matches!(e, ClientEvent::PeerSecure { .. })), 1);
    }

    // 2. The direct path dies: ICE gives up, chat falls back to the hub, the file waits.
    w.cut = true;
    w.run_until(Duration::from_secs(60), "the links down", |w| {
        (0..2).all(|i| w.link_kinds(i).last() == Some(&LinkKind::Hub))
    });
    let stopped_at = part(&w);
    assert!(stopped_at < data.len());
    // The path comes back: the offerer's next attempt opens a new link and bob asks for the
    // rest, from where he is.
    w.cut = false;
    let saved = PathBuf::from("/home/bob/Downloads/holiday.mov");
    w.run_until(Duration::from_secs(120), "the file saved", |w| w.nodes[1].disk.saved.contains_key(&saved));
    assert_eq!(w.nodes[1].disk.saved[&saved], data);
    w.run_until(Duration::from_secs(10), "file_sent", |w| {
        w.count(0, |e| matches!(e, ClientEvent::FileSent { .. })) == 1
    });
    assert_eq!(w.count(1, |e| matches!(e, ClientEvent::FileReceived { .. })), 1);
    assert_eq!(w.count(1, |e| matches!(e, ClientEvent::FileFailed { .. })), 0);
    for i in 0..2 {
        assert_eq!(w.link_kinds(i), [LinkKind::Direct, LinkKind::Hub, LinkKind::Direct], "node {i}");
        assert_eq!(w.count(i, |e| matches!(e, ClientEvent::PeerSecure { .. })), 1, "node {i}");
    }
}

/// Alice starts sending bob a 64 MiB file that bob's slow disk takes 10 s to write, and it
/// gets under way over the direct link.
fn transfer_under_way(w: &mut World) -> (PathBuf, Vec<u8>) {
    w.run_until(Duration::from_secs(60), "direct links", |w| {
        (0..2).all(|i| w.link_kinds(i).last() == Some(&LinkKind::Direct))
    });
    w.nodes[1].disk.write_delay = Duration::from_millis(10);
    let data = pattern(64 * 1024 * 1024);
    let path = PathBuf::from("/home/alice/holiday.mov");
    w.nodes[0].disk.files.insert(path.clone(), data.clone());
    send(w, &path);
    w.run_until(Duration::from_secs(30), "a sixteenth of the file", |w| part(w) > 4 << 20);
    (path, data)
}

fn send(w: &mut World, path: &std::path::Path) {
    let (now, bob) = (w.now, w.nodes[1].fingerprint.clone());
    w.nodes[0]
        .core
        .handle_command(now, ClientCommand::SendFile { peer: bob, path: path.display().to_string() });
}

fn part(w: &World) -> usize {
    w.nodes[1].disk.parts.values().next().map_or(0, Vec::len)
}

fn failures(w: &World, i: usize) -> Vec<String> {
    w.nodes[i]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::FileFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_transfer_ends_with_a_reason_when_the_receiver_restarts_and_a_new_one_goes_through() {
    let mut w = World::new(&["alice", "bob"]);
    let (path, data) = transfer_under_way(&mut w);
    w.restart_node(1, 1);
    w.run_until(Duration::from_secs(30), "alice's transfer failed", |w| !failures(w, 0).is_empty());
    assert_eq!(
        failures(&w, 0),
        ["the other side restarted Kith before the transfer finished: send it again"]
    );
    // Sent again, it goes to the new bob in full.
    send(&mut w, &path);
    let saved = PathBuf::from("/home/bob/Downloads/holiday.mov");
    w.run_until(Duration::from_secs(60), "the file saved", |w| w.nodes[1].disk.saved.contains_key(&saved));
    assert_eq!(w.nodes[1].disk.saved[&saved], data);
    w.run_until(Duration::from_secs(10), "file_sent", |w| {
        w.count(0, |e| matches!(e, ClientEvent::FileSent { .. })) == 1
    });
    assert_eq!(failures(&w, 0).len(), 1);
}

#[test]
fn a_transfer_ends_on_both_sides_when_the_receiver_leaves_and_its_part_file_goes() {
    let mut w = World::new(&["alice", "bob"]);
    transfer_under_way(&mut w);
    let now = w.now;
    w.nodes[1].core.handle_command(now, ClientCommand::Leave { room: "general".into() });
    w.run_until(Duration::from_secs(10), "both transfers failed", |w| {
        !failures(w, 0).is_empty() && !failures(w, 1).is_empty()
    });
    assert_eq!(failures(&w, 0), ["the other side left before the transfer finished"]);
    assert_eq!(failures(&w, 1), ["the other side left before the transfer finished"]);
    w.advance(Duration::from_secs(1));
    assert!(w.nodes[1].disk.parts.is_empty(), "the half-received part file is deleted");
    assert!(w.nodes[0].disk.reading.is_empty(), "alice's file is closed");
}

/// The hub loses sight of bob while no direct link is open (both at once: his network went).
fn bob_out_of_sight(w: &mut World) {
    w.cut = true;
    w.run_until(Duration::from_secs(60), "the links down", |w| {
        (0..2).all(|i| w.link_kinds(i).last() == Some(&LinkKind::Hub))
    });
    w.drop_hub_conn(1);
    w.run_until(Duration::from_secs(5), "bob gone for alice", |w| {
        w.count(0, |e| matches!(e, ClientEvent::PeerLeft { .. })) == 1
    });
}

#[test]
fn a_peer_out_of_sight_for_a_minute_comes_back_and_the_transfer_resumes() {
    let mut w = World::new(&["alice", "bob"]);
    let (_, data) = transfer_under_way(&mut w);
    bob_out_of_sight(&mut w);
    w.advance(Duration::from_secs(60));
    w.cut = false;
    w.connect(1);
    let saved = PathBuf::from("/home/bob/Downloads/holiday.mov");
    w.run_until(Duration::from_secs(120), "the file saved", |w| w.nodes[1].disk.saved.contains_key(&saved));
    assert_eq!(w.nodes[1].disk.saved[&saved], data);
    w.run_until(Duration::from_secs(10), "file_sent", |w| {
        w.count(0, |e| matches!(e, ClientEvent::FileSent { .. })) == 1
    });
    assert_eq!(failures(&w, 0), Vec::<String>::new());
    assert_eq!(failures(&w, 1), Vec::<String>::new());
}

#[test]
fn a_peer_out_of_sight_for_two_minutes_ends_the_transfer() {
    let mut w = World::new(&["alice", "bob"]);
    transfer_under_way(&mut w);
    bob_out_of_sight(&mut w);
    let gone_at = w.now.at;
    w.run_until(Duration::from_secs(130), "alice's transfer failed", |w| !failures(w, 0).is_empty());
    assert!(w.now.at >= gone_at + Duration::from_secs(119), "not before the grace is over");
    assert_eq!(failures(&w, 0), ["the other side has been gone for two minutes"]);
    assert!(w.nodes[0].disk.reading.is_empty(), "alice's file is closed");
}

/// Twenty 20 ms frames from node `i`'s media layer, each a distinct payload, the clock going
/// on between them.
fn speak(w: &mut World, i: usize, first_ts: u64) {
    for k in 0..20u64 {
        let ts = first_ts + k * 960;
        let frame: std::sync::Arc<[u8]> = std::sync::Arc::from(ts.to_be_bytes().as_slice());
        let now = w.now;
        w.nodes[i].core.send_audio(now, ts, frame);
        w.advance(Duration::from_millis(20));
    }
}

#[test]
fn a_call_adds_audio_to_the_running_link_and_a_member_who_left_gets_nothing_more() {
    let mut w = World::new(&["alice", "bob"]);
    w.run_until(Duration::from_secs(60), "direct links", |w| {
        (0..2).all(|i| w.link_kinds(i).last() == Some(&LinkKind::Direct))
    });
    let now = w.now;
    w.nodes[0].core.handle_command(now, ClientCommand::Call { room: "general".into() });
    w.run_until(Duration::from_secs(10), "ringing at bob's", |w| {
        w.count(1, |e| matches!(e, ClientEvent::Call { state, .. } if state == "ringing")) == 1
    });
    let now = w.now;
    w.nodes[1].core.handle_command(now, ClientCommand::Call { room: "general".into() });
    // The audio section is agreed by renegotiating the running link.
    w.advance(Duration::from_secs(2));
    for i in 0..2 {
        assert!(
            w.nodes[i].media.contains(&MediaControl::Start { muted: false, deafened: false }),
            "node {i}"
        );
    }
    speak(&mut w, 0, 48_000);
    speak(&mut w, 1, 96_000);
    let got: Vec<u64> = w.nodes[1].audio.iter().map(|(ts, _)| *ts).collect();
    assert!(got.len() >= 18, "bob got alice's frames: {got:?}");
    for (ts, data) in &w.nodes[1].audio {
        assert_eq!(data.as_slice(), ts.to_be_bytes(), "each frame arrives as it was written");
    }
    assert!(w.nodes[0].audio.len() >= 18, "and alice bob's");
    // Chat went on over the same link throughout.
    assert_eq!(w.link_kinds(0), [LinkKind::Direct]);

    // Bob hangs up: his media stops, and alice's frames no longer reach him.
    let now = w.now;
    w.nodes[1].core.handle_command(now, ClientCommand::Hangup);
    w.advance(Duration::from_secs(2));
    assert_eq!(w.nodes[1].media.last(), Some(&MediaControl::Stop));
    let before = w.nodes[1].audio.len();
    speak(&mut w, 0, 200_000);
    assert_eq!(w.nodes[1].audio.len(), before, "nothing of the call is sent to a member who left");
    assert!(w.nodes[0].media.contains(&MediaControl::PeerLeft(w.nodes[1].core.client().me())));
}
