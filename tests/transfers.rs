//! File transfers in one process on a simulated clock: two real link layers (str0m, in
//! memory, no sockets), the sans-IO transfer machines on both sides, and a simulated disk
//! whose writes can be made slow. Signals between the sides stand in for the Noise session.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kith::protocol::events::ClientEvent;
use kith::protocol::identity::IdentityKey;
use kith::protocol::links::{LinkOutput, Links};
use kith::protocol::transfer::{STALL_AFTER, TransferConfig, TransferOutput, Transfers};
use kith::protocol::wire::FileSignal;

mod sim_disk;
use sim_disk::SimDisk;

struct Side {
    links: Links,
    transfers: Transfers,
    disk: SimDisk,
    events: Vec<ClientEvent>,
    /// Chat packets that arrived, with when.
    chat: Vec<(Instant, Vec<u8>)>,
    downs: usize,
}

struct World {
    now: Instant,
    sides: [Side; 2],
    keys: [IdentityKey; 2],
    addrs: [SocketAddr; 2],
    /// The network drops every datagram (signals still pass, as the hub would carry them).
    cut: bool,
    /// Bob's Pause is held back until his next Accept has gone by (as when the two take
    /// different paths).
    swap_pause: bool,
    held: Option<FileSignal>,
    /// Pauses delivered after their Accept.
    swapped: usize,
}

impl World {
    fn new() -> Self {
        let addrs: [SocketAddr; 2] = ["127.0.0.1:41000".parse().unwrap(), "127.0.0.1:42000".parse().unwrap()];
        let side = |i: usize| Side {
            links: Links::new(vec![addrs[i]], 1 + (i as u64) * (1 << 40)),
            transfers: Transfers::new(
                TransferConfig {
                    downloads: PathBuf::from("/downloads"),
                    auto_accept: true,
                    max_size: u64::MAX,
                },
                7 + i as u64,
            ),
            disk: SimDisk::default(),
            events: Vec::new(),
            chat: Vec::new(),
            downs: 0,
        };
        let mut w = Self {
            now: Instant::now(),
            sides: [side(0), side(1)],
            keys: [IdentityKey([1; 32]), IdentityKey([2; 32])],
            addrs,
            cut: false,
            swap_pause: false,
            held: None,
            swapped: 0,
        };
        let (a, b, now) = (w.keys[0], w.keys[1], w.now);
        w.sides[0].links.want(now, b, true);
        w.sides[1].links.want(now, a, false);
        w.run_until(Duration::from_secs(10), |w| {
            w.sides[0].links.is_open(&b) && w.sides[1].links.is_open(&a)
        });
        w
    }

    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..2 {
                let j = 1 - i;
                let (me, peer) = (self.keys[i], self.keys[j]);
                let now = self.now;
                self.sides[i].disk.tick(now);
                while let Some(done) = self.sides[i].disk.done.pop_front() {
                    moved = true;
                    let s = &mut self.sides[i];
                    s.transfers.handle_disk(now, done, &mut s.links);
                }
                while let Some(out) = self.sides[i].links.poll_output() {
                    moved = true;
                    let s = &mut self.sides[i];
                    match out {
                        LinkOutput::Transmit { source, destination, contents }
                            if !self.cut && source == self.addrs[i] && destination == self.addrs[j] =>
                        {
                            self.sides[j].links.handle_datagram(now, source, destination, &contents);
                        }
                        LinkOutput::Signal { signal, direct, .. } => {
                            self.sides[j].links.handle_signal(now, me, signal, direct)
                        }
                        LinkOutput::FileOpen { .. } => s.transfers.link_ready(now, peer, &mut s.links),
                        LinkOutput::FileWritable { .. } => s.transfers.pump(now, peer, &mut s.links),
                        LinkOutput::FileData { data, .. } => s.transfers.handle_data(now, peer, &data),
                        LinkOutput::Down { .. } => {
                            s.downs += 1;
                            s.transfers.link_down(peer);
                        }
                        LinkOutput::Chat { packet, .. } => s.chat.push((now, packet)),
                        _ => {}
                    }
                }
                while let Some(out) = self.sides[i].transfers.poll_output() {
                    moved = true;
                    match out {
                        TransferOutput::Signal { signal, .. } => {
                            if self.swap_pause && i == 1 && matches!(signal, FileSignal::Pause { .. }) {
                                self.held = Some(signal);
                                continue;
                            }
                            let late = matches!(signal, FileSignal::Accept { .. }).then(|| self.held.take());
                            let s = &mut self.sides[j];
                            s.transfers.handle_signal(now, me, signal, &mut s.links);
                            if let Some(pause) = late.flatten() {
                                s.transfers.handle_signal(now, me, pause, &mut s.links);
                                self.swapped += 1;
                            }
                        }
                        TransferOutput::Event(e) => self.sides[i].events.push(e),
                        TransferOutput::Disk(request) => self.sides[i].disk.submit(now, request),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) {
        let end = self.now + limit;
        loop {
            self.settle();
            if done(self) {
                return;
            }
            assert!(
                self.now < end,
                "timed out: links open {:?}, parts {:?}, events {:?} / {:?}",
                [self.sides[0].links.is_open(&self.keys[1]), self.sides[1].links.is_open(&self.keys[0])],
                self.sides[1].disk.parts.values().map(Vec::len).collect::<Vec<_>>(),
                self.sides[0].events.iter().rev().take(3).collect::<Vec<_>>(),
                self.sides[1].events.iter().rev().take(3).collect::<Vec<_>>(),
            );
            let timers = self.sides.iter().filter_map(|s| s.links.poll_timeout());
            let transfers = self.sides.iter().filter_map(|s| s.transfers.poll_timeout());
            let disks = self.sides.iter().filter_map(|s| s.disk.busy_until);
            let next = timers.chain(transfers).chain(disks).min().unwrap_or(end);
            self.now = next.max(self.now + Duration::from_millis(1)).min(end);
            for s in &mut self.sides {
                s.links.handle_timeout(self.now);
                s.transfers.handle_timeout(self.now);
            }
        }
    }

    fn wait(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(d + Duration::from_secs(1), |w| w.now >= until);
    }

    /// Alice (side 0) sends `data` to bob.
    fn send(&mut self, data: Vec<u8>) -> Vec<u8> {
        let path = PathBuf::from("/home/alice/file.bin");
        self.sides[0].disk.files.insert(path.clone(), data.clone());
        let bob = self.keys[1];
        self.sides[0].transfers.send_file(bob, path);
        data
    }

    fn received(&self) -> Option<&Vec<u8>> {
        self.sides[1].disk.saved.get(&PathBuf::from("/downloads/file.bin"))
    }

    fn count(&self, i: usize, pred: impl Fn(&ClientEvent) -> bool) -> usize {
        self.sides[i].events.iter().filter(|e| pred(e)).count()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

#[test]
fn a_transfer_resumes_where_it_stopped_after_the_link_dropped() {
    let mut w = World::new();
    // A disk at 64 MiB/s makes the transfer take (simulated) time.
    w.sides[1].disk.write_delay = Duration::from_millis(1);
    let data = w.send(pattern(24 * 1024 * 1024 + 123));
    // Part of the way, the path dies for good: ICE gives up, both links go down.
    w.run_until(Duration::from_secs(30), |w| w.sides[1].disk.parts.values().any(|p| p.len() > 4 << 20));
    w.cut = true;
    w.run_until(Duration::from_secs(60), |w| w.sides[0].downs > 0 && w.sides[1].downs > 0);
    let had = w.sides[1].disk.parts.values().next().map_or(0, Vec::len);
    assert!(had > 0 && had < data.len(), "{had}");
    // The path comes back; the offerer's retry opens a new link and bob asks for the rest.
    w.cut = false;
    w.run_until(Duration::from_secs(120), |w| w.received().is_some());
    assert_eq!(w.received(), Some(&data));
    assert_eq!(w.count(0, |e| matches!(e, ClientEvent::FileSent { .. })), 1);
    assert_eq!(w.count(1, |e| matches!(e, ClientEvent::FileReceived { .. })), 1);
    assert_eq!(w.count(1, |e| matches!(e, ClientEvent::FileFailed { .. })), 0);
}

#[test]
fn a_slow_disk_pauses_the_sender_and_chat_on_the_link_does_not_wait() {
    let mut w = World::new();
    // 2 ms per 64 KiB write: the disk takes 32 MiB/s; the link moves far more.
    w.sides[1].disk.write_delay = Duration::from_millis(2);
    let data = w.send(pattern(48 * 1024 * 1024));
    let (alice, bob) = (w.keys[0], w.keys[1]);
    // Chat round trips while the file moves: alice pings, bob answers on arrival.
    let mut rtts = Vec::new();
    for n in 0..40u32 {
        let sent_at = w.now;
        let ping = format!("ping {n}").into_bytes();
        assert!(w.sides[0].links.send_chat(sent_at, bob, &ping));
        w.run_until(Duration::from_secs(5), |w| w.sides[1].chat.iter().any(|(_, p)| *p == ping));
        let pong = format!("pong {n}").into_bytes();
        let now = w.now;
        assert!(w.sides[1].links.send_chat(now, alice, &pong));
        w.run_until(Duration::from_secs(5), |w| w.sides[0].chat.iter().any(|(_, p)| *p == pong));
        rtts.push(w.now - sent_at);
        let until = w.now + Duration::from_millis(25);
        w.run_until(Duration::from_secs(1), |w| w.now >= until);
    }
    w.run_until(Duration::from_secs(120), |w| w.received().is_some());
    assert_eq!(w.received(), Some(&data));
    // What waited for bob's disk stayed bounded (the sender paused), though the link could
    // have buried it in the whole file.
    let waiting = w.sides[1].disk.max_waiting;
    assert!(waiting <= 16 * 1024 * 1024, "{waiting} bytes waited for the disk");
    // Chat went by the file data: a round trip waits for at most a few chunks, never for the
    // disk (a 64 KiB write takes 2 ms; 8 MiB of backlog would be 256 ms).
    let worst = rtts.iter().max().unwrap();
    assert!(*worst < Duration::from_millis(100), "chat round trips {rtts:?}");
}

#[test]
fn a_pause_that_arrives_after_its_accept_stalls_the_sender_only_until_the_receiver_asks_again() {
    let mut w = World::new();
    w.sides[1].disk.write_delay = Duration::from_millis(2);
    w.swap_pause = true;
    let data = w.send(pattern(48 * 1024 * 1024));
    // Bob's disk falls behind, he pauses, catches up and goes on: the sender hears "go on"
    // first and "pause" after, and stops.
    w.run_until(Duration::from_secs(60), |w| w.swapped > 0);
    w.swap_pause = false;
    let part = |w: &World| w.sides[1].disk.parts.values().next().map_or(0, Vec::len);
    w.wait(Duration::from_secs(2));
    let stalled = part(&w);
    w.wait(Duration::from_secs(5));
    assert_eq!(part(&w), stalled, "the sender stopped");
    assert!(stalled < data.len());
    // Bob hears nothing for a while and asks again from where he is.
    w.run_until(STALL_AFTER + Duration::from_secs(60), |w| w.received().is_some());
    assert_eq!(w.received(), Some(&data));
    assert_eq!(w.count(1, |e| matches!(e, ClientEvent::FileFailed { .. })), 0);
}

#[test]
fn an_empty_file_arrives_too() {
    let mut w = World::new();
    let data = w.send(Vec::new());
    w.run_until(Duration::from_secs(10), |w| w.received().is_some());
    assert_eq!(w.received(), Some(&data));
    w.run_until(Duration::from_secs(10), |w| w.count(0, |e| matches!(e, ClientEvent::FileSent { .. })) == 1);
}

/// The path dies mid-transfer and never comes back: after ten minutes without a byte the
/// transfer ends on both sides with a reason, and bob's part file goes.
#[test]
fn a_transfer_that_moves_nothing_for_ten_minutes_ends_on_both_sides() {
    use kith::protocol::transfer::IDLE_LIMIT;
    let mut w = World::new();
    w.sides[1].disk.write_delay = Duration::from_millis(1);
    w.send(pattern(24 * 1024 * 1024));
    w.run_until(Duration::from_secs(30), |w| w.sides[1].disk.parts.values().any(|p| p.len() > 4 << 20));
    w.cut = true;
    let failed = |w: &World, i: usize| w.count(i, |e| matches!(e, ClientEvent::FileFailed { .. }));
    w.run_until(IDLE_LIMIT + Duration::from_secs(120), |w| failed(w, 0) == 1 && failed(w, 1) == 1);
    let reason = w.sides[1].events.iter().find_map(|e| match e {
        ClientEvent::FileFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.as_deref().is_some_and(|r| r.contains("ten minutes")), "{reason:?}");
    assert!(w.sides[1].disk.parts.is_empty(), "the part file is removed");
}
