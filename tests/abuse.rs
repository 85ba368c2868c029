//! Members who abuse the hub and each other, against real `kith hub` and `kith headless`
//! processes. The abuser is the client core itself, driven over a TCP socket by this test, so
//! it authenticates and holds real sessions, and then sends what no honest client would. The
//! honest members must keep chatting and the processes' memory and descriptors stay bounded;
//! the figures printed here are the ones in docs/BENCHMARKS.md.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{HubProc, Peer};
use kith::protocol::client::{Client, ClientConfig, ClientOutput, Now};
use kith::protocol::events::ClientEvent;
use kith::protocol::identity::IdentityKey;
use kith::protocol::noise::Keypair;
use kith::protocol::trust::KnownPeers;
use kith::protocol::wire::{self, ClientToHub, FileSignal, PeerMsg};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;
use zeroize::Zeroizing;

const PW: &str = "pw";

/// A member made of the client core and a socket, for sending what `kith headless` never
/// would. Its reader can be slowed down, to play a member on a slow downlink.
struct RawMember {
    client: Client,
    socket: TcpStream,
    frames: mpsc::Receiver<Option<Vec<u8>>>,
    /// Bytes a second the reader takes, 0 for as fast as they come.
    downlink: Arc<AtomicUsize>,
    events: Vec<ClientEvent>,
    closed: bool,
    base: Instant,
}

impl RawMember {
    fn join(addr: &str, name: &str, seed: u64) -> Self {
        let config = ClientConfig {
            name: name.into(),
            password: Zeroizing::new(PW.into()),
            rooms: vec!["general".into()],
            hub_label: addr.into(),
            hub_pin: None,
            accept_changed_hub_key: false,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let client = Client::new(config, Keypair::generate(&mut rng), KnownPeers::default(), rng);
        let socket = TcpStream::connect(addr).unwrap();
        socket.set_nodelay(true).unwrap();
        let downlink = Arc::new(AtomicUsize::new(0));
        let (tx, frames) = mpsc::channel();
        let (mut reader, rate) = (socket.try_clone().unwrap(), downlink.clone());
        std::thread::spawn(move || {
            loop {
                let mut len = [0u8; 4];
                if reader.read_exact(&mut len).is_err() {
                    break;
                }
                let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                if reader.read_exact(&mut frame).is_err() {
                    break;
                }
                let size = 4 + frame.len();
                if tx.send(Some(frame)).is_err() {
                    break;
                }
                if let bytes_per_s @ 1.. = rate.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs_f64(size as f64 / bytes_per_s as f64));
                }
            }
            let _ = tx.send(None);
        });
        let mut m = Self {
            client,
            socket,
            frames,
            downlink,
            events: Vec::new(),
            closed: false,
            base: Instant::now(),
        };
        let now = m.now();
        m.client.handle_hub_connected(now);
        m.pump_until("ready", |m| m.client.is_ready());
        m
    }

    fn now(&self) -> Now {
        Now { at: Instant::now(), unix_ms: 1_800_000_000_000 + self.base.elapsed().as_millis() as u64 }
    }

    fn key(&self) -> IdentityKey {
        self.client.identity_key()
    }

    /// Writes what the core wants written and keeps its events; true if anything moved.
    fn flush(&mut self) -> bool {
        let mut moved = false;
        while let Some(out) = self.client.poll_output() {
            moved = true;
            match out {
                ClientOutput::ToHub(frame) => {
                    let mut buf = (frame.len() as u32).to_be_bytes().to_vec();
                    buf.extend_from_slice(&frame);
                    if self.socket.write_all(&buf).is_err() {
                        self.closed = true;
                    }
                }
                ClientOutput::Event(e) => self.events.push(e),
                // No direct links: everything goes through the hub.
                _ => {}
            }
        }
        moved
    }

    /// Takes frames from the hub and fires timers for `dur`.
    fn pump(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        loop {
            self.flush();
            let wait = end.saturating_duration_since(Instant::now()).min(Duration::from_millis(20));
            match self.frames.recv_timeout(wait) {
                Ok(Some(frame)) => {
                    let now = self.now();
                    self.client.handle_hub_frame(now, &frame);
                }
                Ok(None) => self.closed = true,
                Err(_) => {}
            }
            if self.client.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                let now = self.now();
                self.client.handle_timeout(now);
            }
            if Instant::now() >= end || self.closed {
                self.flush();
                return;
            }
        }
    }

    fn pump_until(&mut self, what: &str, done: impl Fn(&RawMember) -> bool) {
        let deadline = Instant::now() + common::WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline && !self.closed,
                "raw member: no {what}; saw {:#?}",
                self.events
            );
            self.pump(Duration::from_millis(50));
        }
    }

    fn secure_with(&self, fp: &str) -> bool {
        self.events.iter().any(|e| matches!(e, ClientEvent::PeerSecure { peer, .. } if peer == fp))
    }
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// How long a message from `a` takes to show at `b`.
fn chat_latency(a: &mut Peer, b: &mut Peer, text: &str) -> Duration {
    let start = Instant::now();
    a.send(json!({"cmd": "send", "room": "general", "text": text}));
    b.wait_for("message", |e| e["event"] == "message" && e["text"] == text);
    start.elapsed()
}

#[test]
fn a_member_flooding_relays_at_a_slow_one_is_throttled_and_nobody_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    // Their chat goes through the hub too, beside the flood.
    let relayed = ["--hub", hub.addr.as_str(), "--no-direct"];
    let mut alice = Peer::start("alice", &dir.path().join("alice"), &relayed, PW);
    let mut bob = Peer::start("bob", &dir.path().join("bob"), &relayed, PW);
    let (alice_fp, bob_fp) = (alice.fingerprint(), bob.fingerprint());
    alice.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == bob_fp.as_str());
    bob.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == alice_fp.as_str());
    let idle = chat_latency(&mut alice, &mut bob, "before");
    let mut victim = RawMember::join(&hub.addr, "victim", 1);
    let mut flooder = RawMember::join(&hub.addr, "flooder", 2);
    flooder.pump(Duration::from_millis(300));
    victim.pump(Duration::from_millis(300));
    let hub_pid = hub.child.id();
    let rss_before = rss_mib(hub_pid);

    // The victim is on a 200 KB/s downlink; the flooder sends 60 KB relays at it as fast as
    // TCP takes them.
    victim.downlink.store(200_000, Ordering::Relaxed);
    const FRAME: usize = 60_000;
    let total: usize = 96 << 20;
    let target = victim.key();
    let start = Instant::now();
    let mut latencies = Vec::new();
    for i in 0..total / FRAME {
        let relay = ClientToHub::Relay { to: target, payload: vec![i as u8; FRAME] };
        flooder.client.send_raw_to_hub(&wire::encode(&relay));
        flooder.flush();
        // Both keep their cores running (pings, timers) as any client would.
        victim.pump(Duration::from_millis(1));
        if i % 50 == 0 {
            flooder.pump(Duration::from_millis(1));
        }
        if i % 400 == 0 {
            latencies.push(chat_latency(&mut alice, &mut bob, &format!("during {i}")));
        }
    }
    let flood_secs = start.elapsed().as_secs_f64();
    let rss_during = rss_mib(hub_pid);
    // The victim reads what the hub kept for it and finds its connection alive; the flooder
    // was not cut off either.
    victim.downlink.store(0, Ordering::Relaxed);
    victim.pump(Duration::from_secs(3));
    assert!(!victim.closed, "the slow receiver was disconnected");
    assert!(victim.client.is_ready(), "{:#?}", victim.events);
    assert!(
        !victim.events.iter().any(|e| matches!(e, ClientEvent::Disconnected { .. })),
        "{:#?}",
        victim.events
    );
    flooder.pump(Duration::from_millis(200));
    assert!(!flooder.closed);
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "relay flood: {} MiB in {flood_secs:.1} s at a member reading 200 KB/s; hub RSS {rss_before:.1} → \
         {rss_during:.1} MiB; relayed chat latency idle {} ms, worst during the flood {} ms",
        total >> 20,
        idle.as_millis(),
        worst.as_millis()
    );
    assert!(rss_during - rss_before < 64.0, "hub memory grew by {:.1} MiB", rss_during - rss_before);
    chat_latency(&mut bob, &mut alice, "after");
}

#[test]
fn ten_thousand_file_offers_leave_the_receiver_bounded_and_chatting() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let downloads = dir.path().join("bob-downloads");
    let mut alice = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    let alice_fp = alice.fingerprint();
    let mut bob = Peer::start(
        "bob",
        &dir.path().join("bob"),
        &["--hub", &hub.addr, "--downloads", downloads.to_str().unwrap(), "--accept-files"],
        PW,
    );
    let bob_fp = bob.fingerprint();
    bob.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == alice_fp.as_str());
    let mut eve = RawMember::join(&hub.addr, "eve", 3);
    eve.pump_until("a session with bob", |m| m.secure_with(&bob_fp));
    let bob_key = eve
        .client
        .peer_keys()
        .into_iter()
        .find(|k| k.fingerprint().to_string() == bob_fp)
        .expect("bob's key");
    let pid = bob.child.id();
    let (rss_before, fds_before) = (rss_mib(pid), open_files(pid));

    const OFFERS: u64 = 10_000;
    let start = Instant::now();
    for id in 0..OFFERS {
        let offer = FileSignal::Offer { id, name: format!("gift-{id}.bin"), size: 1 << 30, sha256: [7; 32] };
        eve.client.send_raw_to_peer(bob_key, &wire::encode(&PeerMsg::File(offer)));
        if id % 100 == 0 {
            eve.pump(Duration::from_millis(1));
        }
    }
    eve.pump(Duration::from_secs(2));
    let latency = chat_latency(&mut alice, &mut bob, "still here");
    bob.drain(Duration::from_millis(500));
    let (rss_after, fds_after) = (rss_mib(pid), open_files(pid));
    let offers_shown = bob.log.iter().filter(|e| e["event"] == "file_offer").count();
    let parts = std::fs::read_dir(&downloads).map(|d| d.count()).unwrap_or(0);
    eprintln!(
        "{OFFERS} file offers in {:.1} s: receiver RSS {rss_before:.1} → {rss_after:.1} MiB, open files \
         {fds_before} → {fds_after}, offers shown {offers_shown}, part files {parts}, chat latency after {} ms",
        start.elapsed().as_secs_f64(),
        latency.as_millis()
    );
    assert!(offers_shown <= 16, "{offers_shown} offers shown");
    assert!(parts <= 16, "{parts} part files");
    assert!(fds_after <= fds_before + 20, "{fds_before} → {fds_after} open files");
    assert!(rss_after - rss_before < 64.0, "memory grew by {:.1} MiB", rss_after - rss_before);
}
