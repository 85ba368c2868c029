//! The sans-IO cores in one process on a simulated clock: a hub and three clients, with loss,
//! delay and reordering injected on the peer traffic the hub relays, and hub links that drop.
//! Deterministic: every random choice comes from seeded generators.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use kith::protocol::client::{Client, ClientConfig, ClientOutput};
use kith::protocol::events::{ClientCommand, ClientEvent, LinkKind};
use kith::protocol::hub::{Hub, HubConfig, HubOutput};
use kith::protocol::identity::IdentityKey;
use kith::protocol::noise::Keypair;
use kith::protocol::trust::KnownPeers;
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
}

impl Sim {
    fn new(seed: u64, names: &[&str], loss: f64, max_delay_ms: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let config = HubConfig {
            name: "sim hub".into(),
            password: Zeroizing::new("pw".into()),
            rooms: vec!["general".into()],
        };
        let mut hub = Hub::new(config, Keypair::generate(&mut rng), ChaCha20Rng::seed_from_u64(seed + 1));
        let net = Arc::new(Mutex::new(Lossy { loss, max_delay_ms, ..Default::default() }));
        let tap_net = net.clone();
        let mut tap_rng = ChaCha20Rng::seed_from_u64(seed + 2);
        hub.set_relay_tap(Box::new(move |from, to, payload| {
            let mut n = tap_net.lock().unwrap();
            if chance(&mut tap_rng, n.loss) {
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
        self.hub.handle_connect(self.now, conn, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)));
        self.nodes[i].client.handle_hub_connected(self.now);
    }

    /// Breaks node `i`'s TCP link: frames in flight both ways are lost.
    fn drop_link(&mut self, i: usize) {
        let Some(conn) = self.nodes[i].conn.take() else { return };
        self.to_hub.retain(|(c, _)| *c != conn);
        self.to_client.retain(|(c, _)| *c != conn);
        self.hub.handle_disconnect(self.now, conn);
        self.nodes[i].client.handle_hub_disconnected(self.now, "sim link drop");
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
                self.nodes[x].client.handle_link_open(self.now, peer);
                self.nodes[x].client.handle_link_kind(peer, LinkKind::Direct, Some(1));
            } else {
                self.direct.open.remove(&(x, y));
                self.nodes[x].client.handle_link_down(self.now, peer, None);
            }
        }
        self.settle();
    }

    fn command(&mut self, i: usize, cmd: ClientCommand) {
        self.nodes[i].client.handle_command(self.now, cmd);
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
                        ClientOutput::LinkDropped { .. }
                        | ClientOutput::LinkSignal { .. }
                        | ClientOutput::FileSignal { .. } => {}
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
                self.nodes[j].client.handle_direct_packet(self.now, from, &packet);
            }
            while let Some((conn, frame)) = self.to_hub.pop_front() {
                progress = true;
                self.hub.handle_frame(self.now, conn, &frame);
            }
            while let Some(out) = self.hub.poll_output() {
                progress = true;
                match out {
                    HubOutput::Send { conn, frame } => self.to_client.push_back((conn, frame)),
                    HubOutput::Close { conn, .. } => {
                        if let Some(&i) = self.conn_owner.get(&conn)
                            && self.nodes[i].conn == Some(conn)
                        {
                            self.nodes[i].conn = None;
                            self.nodes[i].client.handle_hub_disconnected(self.now, "closed by hub");
                        }
                    }
                }
            }
            while let Some((conn, frame)) = self.to_client.pop_front() {
                progress = true;
                if let Some(&i) = self.conn_owner.get(&conn)
                    && self.nodes[i].conn == Some(conn)
                {
                    self.nodes[i].client.handle_hub_frame(self.now, &frame);
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
                self.hub.poll_timeout().map(|t| t as i64 - self.now as i64),
                self.nodes
                    .iter()
                    .map(|n| n.client.poll_timeout().map(|t| t as i64 - self.now as i64))
                    .collect::<Vec<_>>()
            );
            self.now = self.now.max(next);
            self.hub.handle_timeout(self.now);
            for n in &mut self.nodes {
                n.client.handle_timeout(self.now);
            }
        }
    }

    fn next_timer(&self) -> u64 {
        let mut next = self.hub.poll_timeout().unwrap_or(u64::MAX);
        for n in &self.nodes {
            next = next.min(n.client.poll_timeout().unwrap_or(u64::MAX));
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
            self.hub.handle_timeout(self.now);
            for n in &mut self.nodes {
                n.client.handle_timeout(self.now);
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
