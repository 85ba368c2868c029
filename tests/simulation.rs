//! The sans-IO cores in one process on a simulated clock: a hub and three clients, with loss,
//! delay and reordering injected on the peer traffic the hub relays, and hub links that drop.
//! Deterministic: every random choice comes from seeded generators.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith::protocol::client::{Client, ClientConfig, ClientOutput, Now};
use kith::protocol::events::{ClientCommand, ClientEvent, LinkKind, PeerSummary};
use kith::protocol::hub::{Hub, HubConfig, HubOutput};
use kith::protocol::identity::IdentityKey;
use kith::protocol::noise::{Handshake, Keypair, Role};
use kith::protocol::session::{self, PeerSession};
use kith::protocol::trust::KnownPeers;
use kith::protocol::wire::{self, LinkSignal, PeerPacket};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

const START: u64 = 1_800_000_000_000;

fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    x < p
}

/// Uniform in `lo..hi`.
fn between(rng: &mut ChaCha20Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo)
}

struct Held {
    at: u64,
    from: IdentityKey,
    to: IdentityKey,
    payload: Vec<u8>,
}

#[derive(Default)]
struct Lossy {
    loss: f64,
    max_delay_ms: u64,
    held: Vec<Held>,
    dropped: usize,
    passed: usize,
    now: u64,
    /// Every payload the hub relayed (from, to), for tests that play a hostile hub.
    seen: Vec<(IdentityKey, IdentityKey, Vec<u8>)>,
    /// Relays to this member are dropped (a member that never answers).
    deaf: Option<IdentityKey>,
}

struct Node {
    client: Client,
    conn: Option<u64>,
    events: Vec<ClientEvent>,
}

struct Sim {
    now: u64,
    hub: Hub,
    nodes: Vec<Node>,
    to_hub: VecDeque<(u64, Vec<u8>)>,
    to_client: VecDeque<(u64, Vec<u8>)>,
    conn_owner: HashMap<u64, usize>,
    next_conn: u64,
    net: Arc<Mutex<Lossy>>,
    rng: ChaCha20Rng,
    direct: Direct,
    seed: u64,
    hub_key: Keypair,
    base: Instant,
    /// How far every node's wall clock was set off the simulated time (a user changing the
    /// date, an NTP step): timers must not notice.
    wall_jump: i64,
}

/// The simulated clock as the cores take it: `now` is its wall clock in milliseconds, and
/// the monotonic clock runs alongside from `base`. (Free functions of the two fields, so a
/// call can borrow a node mutably at the same time.)
fn sim_now(base: Instant, now: u64, wall_jump: i64) -> Now {
    Now { at: sim_instant(base, now), unix_ms: now.saturating_add_signed(wall_jump) }
}

fn sim_instant(base: Instant, now: u64) -> Instant {
    base + Duration::from_millis(now - START)
}

/// A hub whose relays pass through the lossy network `net`.
fn make_hub(seed: u64, key: Keypair, net: Arc<Mutex<Lossy>>) -> Hub {
    let config = HubConfig {
        name: "sim hub".into(),
        password: Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
    };
    let mut hub = Hub::new(config, key, ChaCha20Rng::seed_from_u64(seed + 1));
    let mut tap_rng = ChaCha20Rng::seed_from_u64(seed + 2);
    hub.set_relay_tap(Box::new(move |from, to, payload| {
        let mut n = net.lock().unwrap();
        n.seen.push((from, to, payload.clone()));
        if chance(&mut tap_rng, n.loss) || n.deaf == Some(to) {
            n.dropped += 1;
            return None;
        }
        n.passed += 1;
        if n.max_delay_ms == 0 {
            return Some(payload);
        }
        let at = n.now + between(&mut tap_rng, 0, n.max_delay_ms + 1);
        n.held.push(Held { at, from, to, payload });
        None
    }));
    hub
}

/// Stand-in for the peers' data channels: an ordered pipe per (from, to) pair that the test
/// opens, and can turn into a black hole (a link failing before anyone notices).
#[derive(Default)]
struct Direct {
    open: HashSet<(usize, usize)>,
    black_hole: bool,
    queue: VecDeque<(usize, usize, Vec<u8>)>,
    passed: usize,
    lost: usize,
    /// (node, peer index, offerer) for every `LinkWanted`.
    wanted: Vec<(usize, usize, bool)>,
    /// (node, peer index, at) for every `LinkDropped`.
    dropped: Vec<(usize, usize, u64)>,
    /// (node, from index, signal, came on the link) for every link signal a node received.
    signals: Vec<(usize, usize, LinkSignal, bool)>,
}

impl Sim {
    fn new(seed: u64, names: &[&str], loss: f64, max_delay_ms: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let hub_key = Keypair::generate(&mut rng);
        let net = Arc::new(Mutex::new(Lossy { loss, max_delay_ms, ..Default::default() }));
        let hub = make_hub(seed, hub_key.clone(), net.clone());
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let config = ClientConfig {
                    name: name.to_string(),
                    password: Zeroizing::new("pw".into()),
                    rooms: vec!["general".into()],
                    hub_label: "sim".into(),
                    hub_pin: None,
                    accept_changed_hub_key: false,
                };
                let identity = Keypair::generate(&mut rng);
                let crng = ChaCha20Rng::seed_from_u64(seed * 100 + i as u64);
                Node {
                    client: Client::new(config, identity, KnownPeers::default(), crng),
                    conn: None,
                    events: vec![],
                }
            })
            .collect();
        let mut sim = Sim {
            now: START,
            hub,
            nodes,
            to_hub: VecDeque::new(),
            to_client: VecDeque::new(),
            conn_owner: HashMap::new(),
            next_conn: 1,
            net,
            rng,
            direct: Direct::default(),
            seed,
            hub_key,
            base: Instant::now(),
            wall_jump: 0,
        };
        for i in 0..names.len() {
            sim.connect(i);
        }
        sim
    }

    fn connect(&mut self, i: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.conn_owner.insert(conn, i);
        self.nodes[i].conn = Some(conn);
        self.hub.handle_connect(
            sim_instant(self.base, self.now),
            conn,
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)),
        );
        self.nodes[i].client.handle_hub_connected(sim_now(self.base, self.now, self.wall_jump));
    }

    /// Breaks node `i`'s TCP link: frames in flight both ways are lost.
    fn drop_link(&mut self, i: usize) {
        let Some(conn) = self.nodes[i].conn.take() else { return };
        self.to_hub.retain(|(c, _)| *c != conn);
        self.to_client.retain(|(c, _)| *c != conn);
        self.hub.handle_disconnect(sim_instant(self.base, self.now), conn);
        self.nodes[i]
            .client
            .handle_hub_disconnected(sim_now(self.base, self.now, self.wall_jump), "sim link drop");
    }

    /// The hub process restarts: every connection breaks at once, and the new hub (same key,
    /// no state) knows nobody until clients connect again with [`Sim::connect`].
    fn restart_hub(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].conn.take().is_some() {
                self.nodes[i]
                    .client
                    .handle_hub_disconnected(sim_now(self.base, self.now, self.wall_jump), "sim hub restart");
            }
        }
        self.to_hub.clear();
        self.to_client.clear();
        self.net.lock().unwrap().held.clear();
        self.hub = make_hub(self.seed, self.hub_key.clone(), self.net.clone());
    }

    /// The simulated millisecond of a monotonic instant (rounded up: a timer is never early).
    fn ms_of(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.base);
        START + d.as_millis() as u64 + u64::from(!d.subsec_nanos().is_multiple_of(1_000_000))
    }

    fn key(&self, i: usize) -> IdentityKey {
        self.nodes[i].client.identity_key()
    }

    fn index_of(&self, key: IdentityKey) -> usize {
        (0..self.nodes.len()).find(|&i| self.key(i) == key).expect("a node of this simulation")
    }

    /// Opens (or closes) the simulated data channels between `a` and `b`, as the link layer
    /// would report it to both clients.
    fn set_direct(&mut self, a: usize, b: usize, up: bool) {
        for (x, y) in [(a, b), (b, a)] {
            let peer = self.key(y);
            if up {
                self.direct.open.insert((x, y));
                self.nodes[x].client.handle_link_open(sim_now(self.base, self.now, self.wall_jump), peer, 7);
                self.nodes[x].client.handle_link_kind(peer, LinkKind::Direct, Some(1));
            } else {
                self.direct.open.remove(&(x, y));
                self.nodes[x].client.handle_link_down(
                    sim_now(self.base, self.now, self.wall_jump),
                    peer,
                    None,
                );
            }
        }
        self.settle();
    }

    fn command(&mut self, i: usize, cmd: ClientCommand) {
        self.nodes[i].client.handle_command(sim_now(self.base, self.now, self.wall_jump), cmd);
    }

    /// Moves every queued frame and output until nothing is left to do at this instant.
    fn settle(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.nodes.len() {
                while let Some(out) = self.nodes[i].client.poll_output() {
                    progress = true;
                    match out {
                        ClientOutput::ToHub(frame) => {
                            if let Some(conn) = self.nodes[i].conn {
                                self.to_hub.push_back((conn, frame));
                            }
                        }
                        ClientOutput::Event(e) => self.nodes[i].events.push(e),
                        ClientOutput::CloseHub { .. } => self.drop_link(i),
                        ClientOutput::SaveKnownPeers(_) | ClientOutput::PinHub(_) => {}
                        ClientOutput::LinkWanted { peer, offerer } => {
                            let j = self.index_of(peer);
                            self.direct.wanted.push((i, j, offerer));
                        }
                        ClientOutput::LinkDropped { peer } => {
                            let j = self.index_of(peer);
                            self.direct.open.remove(&(i, j));
                            self.direct.dropped.push((i, j, self.now));
                        }
                        ClientOutput::LinkSignal { peer, signal, direct } => {
                            let j = self.index_of(peer);
                            // The link layer ends a link its peer closed, and reports it down.
                            if matches!(signal, LinkSignal::Close { .. }) && self.direct.open.remove(&(i, j))
                            {
                                self.nodes[i].client.handle_link_down(
                                    sim_now(self.base, self.now, self.wall_jump),
                                    peer,
                                    None,
                                );
                            }
                            self.direct.signals.push((i, j, signal, direct));
                        }
                        // No transfers here (tests/core.rs has them).
                        ClientOutput::FileSignal { .. }
                        | ClientOutput::CallSignal { .. }
                        | ClientOutput::PeerGone { .. }
                        | ClientOutput::PeerBack { .. } => {}
                        ClientOutput::Direct { peer, packet } => {
                            let j = self.index_of(peer);
                            if self.direct.open.contains(&(i, j)) {
                                self.direct.queue.push_back((i, j, packet));
                            } else {
                                self.nodes[i].client.handle_direct_failed(peer, packet);
                            }
                        }
                    }
                }
            }
            while let Some((i, j, packet)) = self.direct.queue.pop_front() {
                progress = true;
                if self.direct.black_hole {
                    self.direct.lost += 1;
                    continue;
                }
                self.direct.passed += 1;
                let from = self.key(i);
                self.nodes[j].client.handle_direct_packet(
                    sim_now(self.base, self.now, self.wall_jump),
                    from,
                    &packet,
                );
            }
            while let Some((conn, frame)) = self.to_hub.pop_front() {
                progress = true;
                self.hub.handle_frame(sim_instant(self.base, self.now), conn, &frame);
            }
            while let Some(out) = self.hub.poll_output() {
                progress = true;
                match out {
                    HubOutput::Send { conn, frame, .. } => self.to_client.push_back((conn, frame)),
                    HubOutput::Close { conn, .. } => {
                        if let Some(&i) = self.conn_owner.get(&conn)
                            && self.nodes[i].conn == Some(conn)
                        {
                            self.nodes[i].conn = None;
                            self.nodes[i].client.handle_hub_disconnected(
                                sim_now(self.base, self.now, self.wall_jump),
                                "closed by hub",
                            );
                        }
                    }
                }
            }
            while let Some((conn, frame)) = self.to_client.pop_front() {
                progress = true;
                if let Some(&i) = self.conn_owner.get(&conn)
                    && self.nodes[i].conn == Some(conn)
                {
                    self.nodes[i]
                        .client
                        .handle_hub_frame(sim_now(self.base, self.now, self.wall_jump), &frame);
                }
            }
            let due: Vec<Held> = {
                let mut n = self.net.lock().unwrap();
                n.now = self.now;
                let (due, later) = std::mem::take(&mut n.held).into_iter().partition(|h| h.at <= self.now);
                n.held = later;
                due
            };
            for h in due {
                progress = true;
                self.hub.inject_relay(h.from, h.to, h.payload);
            }
            if !progress {
                return;
            }
        }
    }

    /// Settles, then jumps the clock to the next timer, until `done` holds or time runs out.
    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Sim) -> bool) {
        let end = self.now + limit_ms;
        let mut spins = 0;
        loop {
            self.settle();
            if done(self) {
                return;
            }
            let next = self.next_timer();
            assert!(next <= end, "simulation stalled or timed out at +{} ms", self.now - START);
            spins = if next <= self.now { spins + 1 } else { 0 };
            assert!(
                spins < 1000,
                "a timer at +{} ms keeps firing without effect: hub {:?}, clients {:?}",
                self.now - START,
                self.hub.poll_timeout().map(|t| self.ms_of(t) as i64 - self.now as i64),
                self.nodes
                    .iter()
                    .map(|n| n.client.poll_timeout().map(|t| self.ms_of(t) as i64 - self.now as i64))
                    .collect::<Vec<_>>()
            );
            self.now = self.now.max(next);
            self.hub.handle_timeout(sim_instant(self.base, self.now));
            for n in &mut self.nodes {
                n.client.handle_timeout(sim_now(self.base, self.now, self.wall_jump));
            }
        }
    }

    fn next_timer(&self) -> u64 {
        let mut next = self.hub.poll_timeout().map_or(u64::MAX, |t| self.ms_of(t));
        for n in &self.nodes {
            next = next.min(n.client.poll_timeout().map_or(u64::MAX, |t| self.ms_of(t)));
        }
        for h in &self.net.lock().unwrap().held {
            next = next.min(h.at);
        }
        next
    }

    /// Lets `ms` of simulated time pass, firing every timer due on the way.
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            self.settle();
            let next = self.next_timer();
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.hub.handle_timeout(sim_instant(self.base, self.now));
            for n in &mut self.nodes {
                n.client.handle_timeout(sim_now(self.base, self.now, self.wall_jump));
            }
        }
        self.now = end;
        self.settle();
    }

    fn all_secure(&self) -> bool {
        let n = self.nodes.len();
        self.nodes.iter().all(|node| {
            let mut peers: Vec<&String> = node
                .events
                .iter()
                .filter_map(|e| match e {
                    ClientEvent::PeerSecure { peer, .. } => Some(peer),
                    _ => None,
                })
                .collect();
            peers.sort();
            peers.dedup();
            peers.len() == n - 1
        })
    }

    fn messages(&self, i: usize) -> Vec<(String, String)> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message { name, text, .. } => Some((name.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    fn count(&self, i: usize, pred: impl Fn(&ClientEvent) -> bool) -> usize {
        self.nodes[i].events.iter().filter(|e| pred(e)).count()
    }

    /// Node `i`'s `peers` listing, as the command returns it now.
    fn peers(&mut self, i: usize) -> Vec<PeerSummary> {
        self.command(i, ClientCommand::Peers);
        self.settle();
        self.nodes[i]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::Peers { peers } => Some(peers.clone()),
                _ => None,
            })
            .expect("a peers listing")
    }

    fn secure_events(&self, i: usize) -> usize {
        self.count(i, |e| matches!(e, ClientEvent::PeerSecure { .. }))
    }
}

fn send(sim: &mut Sim, i: usize, text: String) {
    sim.command(i, ClientCommand::Send { room: "general".into(), text, expires_in_s: None, tag: None });
}

/// Every node got every other node's messages exactly once, in each sender's order.
fn assert_complete(sim: &Sim, names: &[&str], per_sender: usize) {
    for (i, _) in names.iter().enumerate() {
        let got = sim.messages(i);
        let mut by_sender: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, text) in got {
            by_sender.entry(name).or_default().push(text);
        }
        for (j, sender) in names.iter().enumerate() {
            if i == j {
                continue;
            }
            let expected: Vec<String> = (0..per_sender).map(|n| format!("{sender} {n}")).collect();
            assert_eq!(by_sender.get(*sender), Some(&expected), "{} from {sender}", names[i]);
        }
    }
}

#[test]
fn three_peers_secure_and_agree_on_safety_numbers_and_sas() {
    let names = ["alice", "bob", "carol"];
    let mut sim = Sim::new(1, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    for i in 0..3 {
        for j in 0..3 {
            if i == j {
                continue;
            }
            let fj = sim.key(j).fingerprint().to_string();
            let fi = sim.key(i).fingerprint().to_string();
            let find = |node: usize, peer: &str| {
                sim.nodes[node].events.iter().find_map(|e| match e {
                    ClientEvent::PeerSecure { peer: p, safety_number, sas, .. } if p == peer => {
                        Some((safety_number.clone(), sas.clone()))
                    }
                    _ => None,
                })
            };
            assert_eq!(find(i, &fj), find(j, &fi));
        }
    }
}

#[test]
fn lossy_reordering_relay_still_delivers_everything_in_order_once() {
    let names = ["alice", "bob", "carol"];
    let mut sim = Sim::new(7, &names, 0.2, 300);
    sim.run_until(300_000, Sim::all_secure);
    const N: usize = 200;
    for n in 0..N {
        for (i, name) in names.iter().enumerate() {
            send(&mut sim, i, format!("{name} {n}"));
        }
        if n % 10 == 0 {
            sim.advance(100);
        }
    }
    sim.run_until(600_000, |s| (0..3).all(|i| s.messages(i).len() == 2 * N));
    // Let resends and acks finish, then check nothing extra arrived.
    sim.run_until(600_000, |s| {
        (0..3).all(|i| s.count(i, |e| matches!(e, ClientEvent::Delivered { .. })) == 2 * N)
    });
    assert_complete(&sim, &names, N);
    let n = sim.net.lock().unwrap();
    assert!(n.dropped > 100, "the test must actually lose packets: {} dropped", n.dropped);
}

#[test]
fn hub_link_drops_lose_nothing() {
    let names = ["alice", "bob", "carol"];
    let mut sim = Sim::new(11, &names, 0.05, 50);
    sim.run_until(300_000, Sim::all_secure);
    const N: usize = 60;
    for n in 0..N {
        for (i, name) in names.iter().enumerate() {
            send(&mut sim, i, format!("{name} {n}"));
        }
        if n % 7 == 3 {
            let victim = between(&mut sim.rng, 0, 3) as usize;
            sim.settle();
            sim.drop_link(victim);
            let away = between(&mut sim.rng, 100, 5_000);
            sim.advance(away);
            sim.connect(victim);
        }
        sim.advance(50);
    }
    sim.run_until(900_000, |s| (0..3).all(|i| s.messages(i).len() == 2 * N));
    assert_complete(&sim, &names, N);
}

#[test]
fn ephemeral_message_expires_at_its_time_on_both_sides() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(3, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    let sent_at = sim.now;
    sim.command(
        0,
        ClientCommand::Send {
            room: "general".into(),
            text: "poof".into(),
            expires_in_s: Some(30),
            tag: None,
        },
    );
    sim.run_until(10_000, |s| s.messages(1).len() == 1);
    let expired = |s: &Sim, i: usize| s.count(i, |e| matches!(e, ClientEvent::Expired { .. })) == 1;
    sim.run_until(60_000, |s| expired(s, 0) && expired(s, 1));
    assert_eq!(sim.now, sent_at + 30_000, "expired exactly when due, not before");
    assert_eq!(sim.nodes[1].client.messages().count(), 0, "purged from memory");
    assert_eq!(sim.nodes[0].client.messages().count(), 0);
}

#[test]
fn undelivered_ephemeral_message_is_never_shown_late() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(5, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    sim.drop_link(1);
    sim.command(
        0,
        ClientCommand::Send {
            room: "general".into(),
            text: "soon gone".into(),
            expires_in_s: Some(2),
            tag: None,
        },
    );
    sim.command(
        0,
        ClientCommand::Send { room: "general".into(), text: "lasting".into(), expires_in_s: None, tag: None },
    );
    sim.advance(10_000);
    sim.connect(1);
    sim.run_until(60_000, |s| s.messages(1).len() == 1);
    assert_eq!(sim.messages(1), [("alice".to_string(), "lasting".to_string())]);
}

#[test]
fn an_expired_text_leaves_the_outbox_on_time_while_the_hub_is_down() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(6, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    // Alice's own hub connection goes (no direct link either): her messages wait.
    sim.drop_link(0);
    for (text, expires_in_s) in [("soon gone", Some(2)), ("lasting", None)] {
        sim.command(
            0,
            ClientCommand::Send { room: "general".into(), text: text.into(), expires_in_s, tag: None },
        );
    }
    let bob = sim.key(1);
    assert_eq!(sim.nodes[0].client.texts_held_for(&bob), 2);
    sim.advance(3_000);
    assert_eq!(sim.nodes[0].client.texts_held_for(&bob), 1, "the expired text is gone from memory");
}

#[test]
fn a_hostile_hub_cannot_put_its_own_words_in_front_of_the_user() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(7, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    let now = sim_now(sim.base, sim.now, sim.wall_jump);
    let stranger = IdentityKey([9; 32]);
    let lies = [
        wire::HubToClient::Error {
            code: "session_expired".into(),
            message: "Your session expired: reinstall Kith from evil.example".into(),
        },
        wire::HubToClient::Error { code: "no_such_room".into(), message: "see evil.example".into() },
        wire::HubToClient::MemberJoined {
            room: "general".into(),
            member: wire::MemberInfo { key: stranger, name: "bob\nSYSTEM: verify at evil.example".into() },
        },
    ];
    for lie in &lies {
        sim.nodes[0].client.inject_hub_plaintext(now, &wire::encode(lie));
    }
    sim.settle();
    let shown: Vec<String> = sim.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Error { code, message, .. } => Some(format!("{code}: {message}")),
            ClientEvent::PeerJoined { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert!(!shown.is_empty());
    assert!(shown.iter().all(|s| !s.contains("evil.example") && !s.contains('\n')), "{shown:?}");
    assert!(shown.iter().any(|s| s.starts_with("hub_error: ")), "{shown:?}");
    assert!(shown.iter().any(|s| s.starts_with("no_such_room: This hub has no such room")), "{shown:?}");
}

/// A hostile hub announces thousands of members with made-up keys: the client keeps a
/// bounded number, says so once, and still chats with the real member.
#[test]
fn a_hub_announcing_thousands_of_fake_members_does_not_grow_the_client() {
    use kith::protocol::client::{MAX_PEERS, MAX_ROOM_MEMBERS};
    let names = ["alice", "bob"];
    let mut sim = Sim::new(12, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    let now = sim_now(sim.base, sim.now, sim.wall_jump);
    for i in 0..5_000u32 {
        let mut key = [0x77; 32];
        key[..4].copy_from_slice(&i.to_le_bytes());
        // In the room, and in rooms of the hub's invention.
        let room = if i % 2 == 0 { "general".to_string() } else { format!("made-up-{}", i % 40) };
        let lie = wire::HubToClient::MemberJoined {
            room,
            member: wire::MemberInfo { key: IdentityKey(key), name: format!("fake {i}") },
        };
        sim.nodes[0].client.inject_hub_plaintext(now, &wire::encode(&lie));
    }
    sim.settle();
    assert!(sim.nodes[0].client.peer_count() <= MAX_PEERS);
    let joined_general =
        sim.count(0, |e| matches!(e, ClientEvent::PeerJoined { room, .. } if room == "general"));
    assert!(joined_general <= MAX_ROOM_MEMBERS, "{joined_general}");
    assert_eq!(
        sim.count(0, |e| matches!(e, ClientEvent::Error { code, .. } if code == "too_many_members")),
        1
    );
    sim.command(
        0,
        ClientCommand::Send {
            room: "general".into(),
            text: "still here".into(),
            expires_in_s: None,
            tag: None,
        },
    );
    sim.run_until(30_000, |s| s.messages(1).iter().any(|(_, t)| t == "still here"));
}

#[test]
fn a_member_that_never_acknowledges_does_not_block_the_room() {
    let names = ["alice", "bob", "carol"];
    let mut sim = Sim::new(8, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    // Carol stops answering (and the hub still lists her).
    let carol = sim.key(2);
    sim.net.lock().unwrap().deaf = Some(carol);
    let big = "x".repeat(kith::protocol::wire::MAX_TEXT);
    let n = kith::protocol::delivery::MAX_OUTBOX_BYTES / big.len() + 20;
    for i in 0..n {
        sim.command(
            0,
            ClientCommand::Send {
                room: "general".into(),
                text: format!("{i}{big}")[..big.len()].to_string(),
                expires_in_s: None,
                tag: None,
            },
        );
        sim.settle();
    }
    sim.run_until(60_000, |s| s.messages(1).len() == n);
    let refused = sim.count(0, |e| matches!(e, ClientEvent::Error { code, .. } if code == "outbox_full"));
    assert!(refused >= 20, "{refused} notices");
    assert!(
        sim.nodes[0]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Error { message, .. } if message.contains("carol")))
    );
    // Every message was sent (to bob); what waits for carol stays within the budget.
    assert_eq!(sim.count(0, |e| matches!(e, ClientEvent::Sent { .. })), n);
    assert!(
        sim.nodes[0].client.texts_held_for(&carol) * big.len() <= kith::protocol::delivery::MAX_OUTBOX_BYTES
    );
}

#[test]
fn a_room_the_hub_does_not_have_is_named_in_the_refusal_and_not_asked_for_again() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(9, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    sim.command(0, ClientCommand::Join { room: "nosuchroom".into() });
    sim.settle();
    let refusals = |s: &Sim| {
        s.nodes[0]
            .events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Error { code, message, .. } if code == "no_such_room" && message.contains("#nosuchroom")))
            .count()
    };
    assert_eq!(refusals(&sim), 1);
    // Back after a hub restart: "general" is joined again, the unknown room is not asked for.
    sim.restart_hub();
    sim.advance(1_000);
    sim.connect(0);
    sim.run_until(60_000, |s| s.count(0, |e| matches!(e, ClientEvent::Reconnected { .. })) == 1);
    sim.advance(2_000);
    assert_eq!(sim.count(0, |e| matches!(e, ClientEvent::Joined { room } if room == "general")), 2);
    assert_eq!(refusals(&sim), 1);
    assert_eq!(sim.count(0, |e| matches!(e, ClientEvent::Error { code, .. } if code == "no_such_room")), 1);
}

#[test]
fn a_hub_substituting_keys_never_gets_a_secure_session() {
    fn lie(k: &IdentityKey) -> IdentityKey {
        let mut b = k.0;
        b[0] ^= 0xa5;
        IdentityKey(b)
    }
    // Different seeds give every ordering of real and announced keys.
    for seed in 20..36 {
        let mut sim = Sim::new(seed, &["alice", "bob"], 0.0, 0);
        sim.hub.set_key_substitution(lie);
        let mismatch = |s: &Sim| {
            (0..2).any(|i| {
                s.count(i, |e| matches!(e, ClientEvent::Error { code, .. } if code == "peer_key_mismatch"))
                    > 0
            })
        };
        sim.run_until(60_000, mismatch);
        sim.advance(60_000);
        for i in 0..2 {
            assert_eq!(sim.count(i, |e| matches!(e, ClientEvent::PeerSecure { .. })), 0, "seed {seed}");
        }
    }
}

/// Someone takes bob's name with a new key and finishes the handshake late. What alice sent
/// to the room before the handshake showed the change stays with her until she accepts it.
#[test]
fn messages_to_a_changed_identity_wait_for_acknowledgement() {
    let names = ["alice", "bob"];
    // Relayed handshakes take up to 400 ms; the hub's member list arrives at once.
    let mut sim = Sim::new(11, &names, 0.0, 400);
    sim.run_until(60_000, Sim::all_secure);
    let old_bob = sim.key(1);
    sim.drop_link(1);
    sim.run_until(10_000, |s| s.count(0, |e| matches!(e, ClientEvent::PeerLeft { .. })) == 1);
    let config = ClientConfig {
        name: "bob".into(),
        password: Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
        hub_label: "sim".into(),
        hub_pin: None,
        accept_changed_hub_key: false,
    };
    let impostor = Keypair::generate(&mut sim.rng);
    let crng = ChaCha20Rng::seed_from_u64(4242);
    sim.nodes[1] = Node {
        client: Client::new(config, impostor, KnownPeers::default(), crng),
        conn: None,
        events: vec![],
    };
    let new_bob = sim.key(1);
    assert_ne!(new_bob, old_bob);
    sim.connect(1);
    let new_fp = new_bob.fingerprint().to_string();
    sim.run_until(10_000, |s| {
        s.count(0, |e| matches!(e, ClientEvent::PeerJoined { peer, .. } if *peer == new_fp)) == 1
    });
    assert_eq!(sim.count(0, |e| matches!(e, ClientEvent::PeerSecure { peer, .. } if *peer == new_fp)), 0);
    send(&mut sim, 0, "before the handshake".into());
    sim.run_until(60_000, |s| s.count(0, |e| matches!(e, ClientEvent::IdentityChanged { .. })) == 1);
    sim.advance(30_000);
    assert!(sim.messages(1).is_empty(), "the new key got nothing: {:?}", sim.messages(1));
    // Sending more is refused outright.
    send(&mut sim, 0, "after the warning".into());
    sim.settle();
    assert_eq!(
        sim.count(0, |e| matches!(e, ClientEvent::Error { code, .. } if code == "identity_unacknowledged")),
        1
    );
    sim.command(0, ClientCommand::AcknowledgeChange { peer: new_fp.clone() });
    sim.run_until(10_000, |s| !s.messages(1).is_empty());
    assert_eq!(sim.messages(1), [("alice".to_string(), "before the handshake".to_string())]);
}

#[test]
fn chat_moves_to_the_direct_link_and_back_without_loss_duplicates_or_reordering() {
    let names = ["alice", "bob"];
    // The hub path is slow and reorders, so packets of both paths interleave at the receiver.
    let mut sim = Sim::new(21, &names, 0.0, 400);
    sim.run_until(60_000, Sim::all_secure);
    // Exactly one side offers, and both were asked for a link once the session was up.
    let offerers: Vec<bool> = sim.direct.wanted.iter().map(|w| w.2).collect();
    assert_eq!(offerers.iter().filter(|o| **o).count(), 1, "{:?}", sim.direct.wanted);
    assert_eq!(offerers.len(), 2);

    const N: usize = 90;
    let mut n = 0;
    let mut batch = |sim: &mut Sim, count: usize| {
        for _ in 0..count {
            for (i, name) in names.iter().enumerate() {
                send(sim, i, format!("{name} {n}"));
            }
            n += 1;
        }
    };
    // 1. Through the hub, still in flight when the link opens.
    batch(&mut sim, 15);
    sim.advance(100);
    sim.set_direct(0, 1, true);
    let relayed_before = sim.net.lock().unwrap().passed;
    // 2. Over the link.
    batch(&mut sim, 15);
    sim.advance(50);
    assert!(sim.direct.passed >= 30, "chat must use the link: {} packets on it", sim.direct.passed);
    let relayed_during = sim.net.lock().unwrap().passed - relayed_before;
    // 3. The link silently loses everything, then is reported down: back to the hub.
    sim.direct.black_hole = true;
    batch(&mut sim, 15);
    sim.advance(50);
    assert!(sim.direct.lost > 0);
    sim.direct.black_hole = false;
    sim.set_direct(0, 1, false);
    batch(&mut sim, 15);
    sim.advance(3_000);
    // 4. And direct once more.
    sim.set_direct(0, 1, true);
    batch(&mut sim, 30);
    sim.run_until(120_000, |s| (0..2).all(|i| s.messages(i).len() == N));
    sim.run_until(120_000, |s| {
        (0..2).all(|i| s.count(i, |e| matches!(e, ClientEvent::Delivered { .. })) == N)
    });
    assert_complete(&sim, &names, N);
    // While the link was up, the hub carried (almost) nothing of the chat: at most stragglers
    // of step 1 being acknowledged.
    assert!(relayed_during <= 15, "{relayed_during} packets went through the hub while direct");
    // Every change of path was announced: direct, hub, direct.
    for i in 0..2 {
        let kinds: Vec<LinkKind> = sim.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Link { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, [LinkKind::Direct, LinkKind::Hub, LinkKind::Direct], "node {i}");
    }
}

/// Sends `count` rounds of one numbered message from each node, numbering on from `*n`.
fn rounds(sim: &mut Sim, names: &[&str], n: &mut usize, count: usize) {
    for _ in 0..count {
        for (i, name) in names.iter().enumerate() {
            send(sim, i, format!("{name} {n}"));
        }
        *n += 1;
    }
}

fn all_delivered(sim: &Sim, n: usize) -> bool {
    (0..sim.nodes.len()).all(|i| {
        sim.messages(i).len() == n * (sim.nodes.len() - 1)
            && sim.count(i, |e| matches!(e, ClientEvent::Delivered { .. })) == n * (sim.nodes.len() - 1)
    })
}

#[test]
fn a_session_on_a_direct_link_outlives_hub_restarts_and_reconnects_in_any_order() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(32, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    sim.set_direct(0, 1, true);
    let wanted = sim.direct.wanted.len();
    // (Each new session dropped whatever link the previous one had.)
    let dropped = sim.direct.dropped.len();
    let mut n = 0;
    rounds(&mut sim, &names, &mut n, 5);
    sim.advance(500);
    // 1. The hub restarts; alice is back after 4 s, bob after 8 s. Chat goes on meanwhile.
    sim.restart_hub();
    rounds(&mut sim, &names, &mut n, 5);
    sim.advance(4_000);
    sim.connect(0);
    rounds(&mut sim, &names, &mut n, 5);
    sim.advance(4_000);
    sim.connect(1);
    rounds(&mut sim, &names, &mut n, 5);
    sim.advance(3_000);
    // 2. Bob's own hub connection drops and comes back.
    sim.drop_link(1);
    rounds(&mut sim, &names, &mut n, 5);
    sim.advance(1_000);
    sim.connect(1);
    sim.advance(2_000);
    // 3. Another restart, bob first this time.
    sim.restart_hub();
    sim.advance(1_000);
    sim.connect(1);
    rounds(&mut sim, &names, &mut n, 5);
    sim.advance(3_000);
    sim.connect(0);
    rounds(&mut sim, &names, &mut n, 5);
    sim.run_until(60_000, |s| all_delivered(s, n));
    assert_complete(&sim, &names, n);
    // The same session and the same link all along: no new handshake, no link torn down or
    // asked for, nobody seen leaving.
    for i in 0..2 {
        assert_eq!(sim.secure_events(i), 1, "node {i} made a new session");
        assert_eq!(sim.count(i, |e| matches!(e, ClientEvent::PeerLeft { .. })), 0, "node {i}");
    }
    assert_eq!(&sim.direct.dropped[dropped..], [], "links dropped");
    assert_eq!(sim.direct.wanted.len(), wanted);
    // And the hub carried none of the chat after the first restart.
    assert!(sim.direct.passed >= 2 * n, "{} packets on the link", sim.direct.passed);
    // Once the link really closes, the hub's view stands again: both are listed there.
    sim.set_direct(0, 1, false);
    sim.advance(1_000);
    assert!(sim.peers(0).iter().any(|p| p.name == "bob" && p.secure));
}

/// Alice and bob with secure sessions, after `rounds` of chat through the hub.
fn chatting_pair(seed: u64, chat_rounds: usize) -> (Sim, usize) {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(seed, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    let mut n = 0;
    rounds(&mut sim, &names, &mut n, chat_rounds);
    sim.run_until(10_000, |s| all_delivered(s, n));
    (sim, n)
}

/// A session data packet `from` sent through the hub.
fn data_seen_from(sim: &Sim, from: IdentityKey) -> Vec<u8> {
    let net = sim.net.lock().unwrap();
    net.seen
        .iter()
        .find(|(f, _, p)| *f == from && matches!(wire::decode::<PeerPacket>(p), Ok(PeerPacket::Data { .. })))
        .map(|(_, _, p)| p.clone())
        .expect("a data packet sent through the hub")
}

#[test]
fn a_hostile_hub_cannot_end_a_session_that_runs_on_a_direct_link() {
    let names = ["alice", "bob"];
    let (mut sim, mut n) = chatting_pair(33, 2);
    sim.set_direct(0, 1, true);
    let dropped = sim.direct.dropped.len();
    let (alice, bob) = (sim.key(0), sim.key(1));
    let seen = sim.net.lock().unwrap().seen.clone();
    let data = data_seen_from(&sim, alice);
    let Ok(PeerPacket::Data { session, noise }) = wire::decode::<PeerPacket>(&data) else { unreachable!() };
    let first_hello = seen
        .iter()
        .find(|(_, _, p)| matches!(wire::decode::<PeerPacket>(p), Ok(PeerPacket::Handshake { step: 0, .. })))
        .cloned()
        .expect("the first handshake message");
    // The hub replays a packet, reflects one back at its sender, garbles one, replays the
    // first handshake message, forges a new one and Resets both sides.
    let mut garbled = noise.clone();
    garbled[5] ^= 1;
    let garbled = wire::encode(&PeerPacket::Data { session, noise: garbled });
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let (_, forged_hello) =
        PeerSession::initiate(Instant::now(), &Keypair::generate(&mut rng), &mut rng).unwrap();
    let reset = wire::encode(&PeerPacket::Reset { session });
    let attacks = [
        (alice, bob, data.clone()),
        (bob, alice, data.clone()),
        (alice, bob, garbled),
        (first_hello.0, first_hello.1, first_hello.2),
        (alice, bob, wire::encode(&forged_hello)),
        (alice, bob, reset.clone()),
        (bob, alice, reset),
    ];
    for (from, to, payload) in attacks {
        sim.hub.inject_relay(from, to, payload);
        sim.settle();
    }
    // Then it drops everything it is asked to relay.
    sim.net.lock().unwrap().loss = 1.0;
    rounds(&mut sim, &names, &mut n, 10);
    sim.run_until(60_000, |s| all_delivered(s, n));
    assert_complete(&sim, &names, n);
    assert_eq!(&sim.direct.dropped[dropped..], [], "links dropped");
    // What did not open was counted: the replay and the garbled copy at bob, the reflection
    // at alice, the replayed first message at its receiver.
    let at_bob = sim.peers(1).into_iter().find(|p| p.name == "alice").unwrap();
    let at_alice = sim.peers(0).into_iter().find(|p| p.name == "bob").unwrap();
    assert!(at_bob.dropped_packets >= 2, "{at_bob:?}");
    assert!(at_alice.dropped_packets >= 1, "{at_alice:?}");
    assert_eq!(at_bob.dropped_packets + at_alice.dropped_packets, 4, "{at_bob:?} {at_alice:?}");
    assert!(at_bob.secure && at_alice.secure);
}

#[test]
fn a_hub_forging_a_first_handshake_message_learns_nothing_from_the_answer() {
    // Review D15: the responder's intro (its process, how many messages it acknowledged) went
    // in message 2, to an initiator nobody had authenticated yet.
    let (mut sim, _) = chatting_pair(37, 3);
    let (alice, bob) = (sim.key(0), sim.key(1));
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let forger = Keypair::generate(&mut rng);
    let mut hs = Handshake::new(Role::Initiator, &forger, Keypair::generate(&mut rng), session::PROLOGUE);
    let session = 0x5eed;
    let noise = hs.write_message(&[]).unwrap();
    let before = sim.net.lock().unwrap().seen.len();
    sim.hub.inject_relay(alice, bob, wire::encode(&PeerPacket::Handshake { session, step: 0, noise }));
    sim.settle();
    let answers: Vec<_> = sim.net.lock().unwrap().seen[before..]
        .iter()
        .filter(|(from, to, _)| (*from, *to) == (bob, alice))
        .filter_map(|(_, _, p)| match wire::decode::<PeerPacket>(p) {
            Ok(PeerPacket::Handshake { session: s, step, noise }) if s == session => Some((step, noise)),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "bob answers once, with message 2 and nothing after");
    let (step, msg2) = &answers[0];
    assert_eq!(*step, 1);
    // The forger reads message 2 as any initiator would (it holds the ephemeral key): empty.
    let payload = hs.read_message(msg2).expect("message 2 opens for the forger");
    assert_eq!(payload, Vec::<u8>::new(), "message 2 told the forger something");
    // The forger cannot go on: its message 3 proves its own key, not alice's.
    let msg3 = hs.write_message(&[]).unwrap();
    sim.hub.inject_relay(alice, bob, wire::encode(&PeerPacket::Handshake { session, step: 2, noise: msg3 }));
    sim.settle();
    assert!(sim.peers(0)[0].secure && sim.peers(1)[0].secure, "the real session stays");
}

#[test]
fn a_handshake_while_the_link_is_silent_completes_through_the_hub() {
    let (mut sim, _) = chatting_pair(36, 1);
    let (alice, bob) = (sim.key(0), sim.key(1));
    let Ok(PeerPacket::Data { session, .. }) = wire::decode::<PeerPacket>(&data_seen_from(&sim, bob)) else {
        unreachable!()
    };
    sim.set_direct(0, 1, true);
    // The path dies without anyone noticing yet: the link is open and takes everything.
    sim.direct.black_hole = true;
    // Bob (really: the hub) says he lost the session, so alice handshakes again. Her first
    // message goes on the silent link and through the hub; bob answers the copy that came,
    // the way it came.
    sim.hub.inject_relay(bob, alice, wire::encode(&PeerPacket::Reset { session }));
    sim.settle();
    sim.run_until(1_000, |s| s.secure_events(0) == 2 && s.secure_events(1) == 2);
    assert!(sim.direct.lost > 0, "the link's copy was lost");
    assert!(sim.peers(0)[0].secure && sim.peers(1)[0].secure);
}

#[test]
fn a_member_that_leaves_ends_the_link_on_both_sides_at_once() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(34, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    sim.set_direct(0, 1, true);
    let now = sim.now;
    let before = sim.direct.dropped.len();
    sim.command(1, ClientCommand::Leave { room: "general".into() });
    sim.settle();
    // Bob said so on the link: alice drops bob and the link in the same instant, before the
    // hub's word arrives or the link goes quiet.
    let mut drops = sim.direct.dropped[before..].to_vec();
    drops.sort();
    assert_eq!(drops, [(0, 1, now), (1, 0, now)]);
    assert_eq!(sim.count(0, |e| matches!(e, ClientEvent::PeerLeft { .. })), 1);
    assert!(sim.peers(0).is_empty());
}

#[test]
fn a_new_session_keeps_a_link_only_if_both_sides_still_hold_it() {
    let (mut sim, _) = chatting_pair(38, 1);
    let (alice, bob) = (sim.key(0), sim.key(1));
    let Ok(PeerPacket::Data { session, .. }) = wire::decode::<PeerPacket>(&data_seen_from(&sim, bob)) else {
        unreachable!()
    };
    sim.set_direct(0, 1, true);
    // Bob's side of the link went down and alice has not heard of it (its Close was lost).
    sim.direct.open.remove(&(1, 0));
    let now = sim_now(sim.base, sim.now, sim.wall_jump);
    sim.nodes[1].client.handle_link_down(now, alice, None);
    sim.settle();
    let wanted = sim.direct.wanted.len();
    // A new session starts (bob seems to have lost the old one).
    sim.hub.inject_relay(bob, alice, wire::encode(&PeerPacket::Reset { session }));
    sim.settle();
    sim.run_until(1_000, |s| s.secure_events(0) == 2 && s.secure_events(1) == 2);
    // Both sides make a new link; had alice kept hers, the side waiting for an offer would
    // wait for one that never comes.
    let new: Vec<usize> = sim.direct.wanted[wanted..].iter().map(|(i, _, _)| *i).collect();
    assert!(new.contains(&0) && new.contains(&1), "{:?}", &sim.direct.wanted[wanted..]);
}

/// Whether node `i` got a link's Close on the link itself (`on_link`) or through the hub.
fn got_close(sim: &Sim, i: usize, on_link: bool) -> bool {
    sim.direct
        .signals
        .iter()
        .any(|(to, _, s, direct)| *to == i && matches!(s, LinkSignal::Close { .. }) && *direct == on_link)
}

#[test]
fn a_member_that_quits_closes_its_links_and_the_hub_has_the_last_word() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(35, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    sim.set_direct(0, 1, true);
    sim.nodes[1].client.handle_quit();
    sim.settle();
    // Alice's link layer got the Close on the link and took it down at once.
    assert!(got_close(&sim, 0, true), "{:?}", sim.direct.signals);
    assert!(!sim.direct.open.contains(&(0, 1)));
    // Bob is still in the room until the hub says otherwise, and then leaves at once.
    assert_eq!(sim.peers(0).len(), 1);
    sim.drop_link(1);
    sim.settle();
    assert_eq!(sim.count(0, |e| matches!(e, ClientEvent::PeerLeft { .. })), 1);
    assert!(sim.peers(0).is_empty());
}

#[test]
fn a_quit_behind_a_stuck_link_still_closes_it_at_once_through_the_hub() {
    let (mut sim, _) = chatting_pair(37, 0);
    sim.set_direct(0, 1, true);
    // Nothing on the link gets through (as behind a transfer's full send window).
    sim.direct.black_hole = true;
    sim.nodes[1].client.handle_quit();
    sim.settle();
    assert!(got_close(&sim, 0, false), "{:?}", sim.direct.signals);
    assert!(!sim.direct.open.contains(&(0, 1)));
}

#[test]
fn a_message_of_an_unknown_kind_is_ignored_and_the_session_carries_on() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(36, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    let bob = sim.key(1);
    // A newer alice sends kind 200 (this version has a handful), with a body of its own.
    sim.nodes[0].client.send_raw_to_peer(bob, &[wire::WIRE_VERSION, 0xc8, 0x01, 7, 7, 7]);
    sim.settle();
    let mut n = 0;
    rounds(&mut sim, &names, &mut n, 3);
    sim.run_until(10_000, |s| all_delivered(s, n));
    assert_complete(&sim, &names, n);
    let alice_at_bob = sim.peers(1).into_iter().find(|p| p.name == "alice").unwrap();
    assert_eq!(alice_at_bob.ignored_messages, 1);
    assert_eq!(alice_at_bob.dropped_packets, 0);
    assert_eq!(sim.secure_events(1), 1, "the session was not replaced");
    // Both announced what they can do.
    assert!(alice_at_bob.capabilities.contains(&"link-outlives-hub".to_string()), "{alice_at_bob:?}");
}

#[test]
fn a_wall_clock_that_jumps_moves_no_timer() {
    let names = ["alice", "bob"];
    let mut sim = Sim::new(37, &names, 0.0, 0);
    sim.run_until(60_000, Sim::all_secure);
    let mut n = 0;
    rounds(&mut sim, &names, &mut n, 2);
    sim.run_until(10_000, |s| all_delivered(s, n));
    let disconnects = |s: &Sim| {
        (0..2).map(|i| s.count(i, |e| matches!(e, ClientEvent::Disconnected { .. }))).sum::<usize>()
    };
    // A day forward: the hub link's deadline and the resend timers run on the monotonic
    // clock, so nothing times out.
    sim.wall_jump = 86_400_000;
    sim.advance(5_000);
    rounds(&mut sim, &names, &mut n, 2);
    sim.run_until(10_000, |s| all_delivered(s, n));
    // An hour back: pings, resends and handshakes still come when due.
    sim.wall_jump = -3_600_000;
    sim.advance(95_000);
    rounds(&mut sim, &names, &mut n, 2);
    sim.run_until(10_000, |s| all_delivered(s, n));
    assert_complete(&sim, &names, n);
    assert_eq!(disconnects(&sim), 0, "the hub link was given up");
    for i in 0..2 {
        assert_eq!(sim.secure_events(i), 1, "node {i} made a new session");
    }
}
