//! Direct peer links between real `kith headless` processes on 127.0.0.1: str0m over one UDP
//! socket each, signalled inside the Noise session the hub relays.

mod common;

use common::{HubProc, Peer, random_file, secure_pair};
use serde_json::json;

const PW: &str = "correct horse battery staple";

/// Waits for the `link` event announcing `kind` towards `peer`.
fn wait_link(p: &mut Peer, peer: &str, kind: &str) -> serde_json::Value {
    p.wait_for("link", |e| e["event"] == "link" && e["peer"] == peer && e["kind"] == kind)
}

/// Alice and bob with a secure session and an open direct link, and their fingerprints.
fn linked_pair(dir: &std::path::Path, hub: &str) -> (Peer, Peer, String, String) {
    let (mut a, mut b) = secure_pair(dir, hub, PW);
    let fa = a.fingerprint();
    let fb = b.fingerprint();
    wait_link(&mut a, &fb, "direct");
    wait_link(&mut b, &fa, "direct");
    (a, b, fa, fb)
}

#[test]
fn chat_moves_to_the_direct_link_and_keeps_going_without_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b, _, _) = linked_pair(dir.path(), &hub.addr);
    // The round trip is measured by the link's stats within a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let peers = loop {
        a.send(json!({"cmd": "peers"}));
        let peers = a.wait_event("peers");
        if peers["peers"][0]["rtt_ms"].is_u64() || std::time::Instant::now() > deadline {
            break peers;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(peers["peers"][0]["link"], "direct", "{peers}");
    assert!(peers["peers"][0]["rtt_ms"].as_u64().is_some_and(|ms| ms < 1_000), "{peers}");

    // The hub goes away: the session lives on over the direct link, both ways, in order.
    drop(hub);
    a.wait_event("disconnected");
    b.wait_event("disconnected");
    const N: usize = 200;
    let lines: Vec<String> = (0..N)
        .map(|i| json!({"cmd": "send", "room": "general", "text": format!("a {i}")}).to_string())
        .collect();
    a.send_raw(&lines.join("\n"));
    b.send(json!({"cmd": "send", "room": "general", "text": "b 0"}));
    let got = b.collect(N, |e| e["event"] == "message");
    let texts: Vec<&str> = got.iter().map(|e| e["text"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("a {i}")).collect();
    assert_eq!(texts, expected);
    // Receipts and bob's message interleave: count them in the whole log.
    a.wait_until("receipts and bob's message", |a| {
        a.log.iter().filter(|e| e["event"] == "delivered").count() == N
            && a.log.iter().any(|e| e["event"] == "message" && e["text"] == "b 0")
    });
    // Nothing reported the link down while the hub was gone.
    assert!(!a.log.iter().any(|e| e["event"] == "link" && e["kind"] == "hub"), "{:#?}", a.log);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

#[test]
fn without_direct_links_chat_stays_on_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::start("alice", &dir.path().join("alice"), &["--hub", &hub.addr, "--no-direct"], PW);
    let mut b = Peer::join("bob", &dir.path().join("bob"), &hub.addr, PW);
    a.wait_event("peer_secure");
    b.wait_event("peer_secure");
    a.send(json!({"cmd": "send", "room": "general", "text": "via the hub"}));
    assert_eq!(b.wait_event("message")["text"], "via the hub");
    a.wait_event("delivered");
    // bob offers or answers, alice never takes part: no link comes up on either side.
    b.drain(std::time::Duration::from_secs(2));
    assert!(!b.log.iter().any(|e| e["event"] == "link"), "{:#?}", b.log);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

#[test]
fn a_200_mb_file_crosses_the_direct_link_intact() {
    const SIZE: usize = 200 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    let sha = random_file(&source, SIZE);
    let downloads = dir.path().join("bob-downloads");
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    let fa = a.fingerprint();
    let dl = downloads.to_str().unwrap();
    let mut b = Peer::start(
        "bob",
        &dir.path().join("bob"),
        &["--hub", &hub.addr, "--downloads", dl, "--accept-files"],
        PW,
    );
    let fb = b.fingerprint();
    wait_link(&mut a, &fb, "direct");
    wait_link(&mut b, &fa, "direct");

    let started = std::time::Instant::now();
    a.send(json!({"cmd": "send_file", "peer": fb, "path": source.to_str().unwrap()}));
    let offer = b.wait_event("file_offer");
    assert_eq!(offer["name"], "big.bin");
    assert_eq!(offer["size"], SIZE as u64);
    assert_eq!(offer["from"], fa.as_str());
    let got = b.wait_event("file_received");
    let secs = started.elapsed().as_secs_f64();
    eprintln!("200 MiB over the direct link in {secs:.2} s ({:.0} MiB/s)", 200.0 / secs);
    assert_eq!(got["id"], offer["id"]);
    assert_eq!(got["sha256"], sha.as_str());
    assert_eq!(got["size"], SIZE as u64);
    let path = std::path::PathBuf::from(got["path"].as_str().unwrap());
    assert_eq!(path, downloads.join("big.bin"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
    // Progress was reported along the way, and no temporary file is left behind.
    assert!(b.log.iter().filter(|e| e["event"] == "file_progress").count() > 3);
    let names: Vec<String> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["big.bin"]);
    // Each side names the transfer by an id of its own (a sender cannot pick the receiver's).
    let sent = a.wait_event("file_sent");
    let sending = a.log.iter().find(|e| e["event"] == "file_sending").expect("file_sending");
    assert_eq!(sent["id"], sending["id"]);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

#[test]
fn the_hub_restarts_under_a_running_transfer_and_nobody_notices() {
    const SIZE: usize = 200 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    let sha = random_file(&source, SIZE);
    let downloads = dir.path().join("bob-downloads");
    let hub_profile = dir.path().join("hub");
    let hub = HubProc::start(&hub_profile, PW, &[]);
    let addr = hub.addr.clone();
    let mut a = Peer::join("alice", &dir.path().join("alice"), &addr, PW);
    let fa = a.fingerprint();
    let dl = downloads.to_str().unwrap();
    let mut b = Peer::start(
        "bob",
        &dir.path().join("bob"),
        &["--hub", &addr, "--downloads", dl, "--accept-files"],
        PW,
    );
    let fb = b.fingerprint();
    wait_link(&mut a, &fb, "direct");
    wait_link(&mut b, &fa, "direct");

    a.send(json!({"cmd": "send_file", "peer": fb, "path": source.to_str().unwrap()}));
    b.wait_event("file_progress");
    // The hub process goes away mid-transfer and a new one starts on the same address with
    // the same key; both clients reconnect to it on their own schedules.
    drop(hub);
    let _hub = HubProc::start_on(&hub_profile, &addr, PW, &[]);
    a.wait_event("reconnected");
    b.wait_event("reconnected");
    a.send(json!({"cmd": "send", "room": "general", "text": "still here"}));
    let got = b.wait_event("file_received");
    assert_eq!(got["sha256"], sha.as_str());
    b.wait_until("message", |b| b.log.iter().any(|e| e["event"] == "message" && e["text"] == "still here"));
    // The transfer was still running when both were back on the hub.
    let at = |p: &Peer, event: &str| p.log.iter().position(|e| e["event"] == event).unwrap();
    assert!(at(&b, "reconnected") < at(&b, "file_received"), "{:#?}", b.log);
    a.wait_event("file_sent");
    // Nobody saw the other leave, the session was never replaced and the link never fell
    // back to the hub.
    for p in [&a, &b] {
        for event in ["peer_left", "file_failed"] {
            assert!(!p.log.iter().any(|e| e["event"] == event), "{}: {event} in {:#?}", p.name, p.log);
        }
        assert_eq!(p.log.iter().filter(|e| e["event"] == "peer_secure").count(), 1, "{}", p.name);
        assert!(!p.log.iter().any(|e| e["event"] == "link" && e["kind"] == "hub"), "{:#?}", p.log);
    }
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

#[test]
fn a_peer_that_quits_closes_the_link_on_both_sides_even_without_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b, fa, _) = linked_pair(dir.path(), &hub.addr);
    drop(hub);
    a.wait_event("disconnected");
    b.wait_event("disconnected");
    // Alice quits: her Close goes on the link, so bob ends it now rather than after the path
    // has been silent for seconds and an ICE restart has given up (about 21 s).
    let quit_at = std::time::Instant::now();
    assert_eq!(a.quit(), 0);
    wait_link(&mut b, &fa, "hub");
    let took = quit_at.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "bob noticed after {took:?}");
    assert_eq!(b.quit(), 0);
}

#[cfg(unix)]
#[test]
fn a_receiver_whose_disk_crawls_keeps_chatting_at_full_speed() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    random_file(&source, 32 * 1024 * 1024);
    let downloads = dir.path().join("bob-downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    let fa = a.fingerprint();
    let dl = downloads.to_str().unwrap();
    let mut b = Peer::start("bob", &dir.path().join("bob"), &["--hub", &hub.addr, "--downloads", dl], PW);
    let fb = b.fingerprint();
    wait_link(&mut a, &fb, "direct");
    wait_link(&mut b, &fa, "direct");
    a.send(json!({"cmd": "send_file", "peer": fb, "path": source.to_str().unwrap()}));
    let offer = b.wait_event("file_offer");
    let id = offer["id"].as_str().unwrap().to_string();
    // Bob's part file is a pipe that this test drains at 256 KiB/s: every write to it waits.
    let part = downloads.join(format!(".big.bin.kith-part-{id}"));
    assert!(std::process::Command::new("mkfifo").arg(&part).status().unwrap().success());
    let drain_for = Duration::from_secs(8);
    let reader = std::thread::spawn(move || {
        let mut pipe = std::fs::File::open(part).unwrap();
        let mut buf = vec![0; 16 * 1024];
        let (started, mut drained) = (Instant::now(), 0usize);
        while started.elapsed() < drain_for {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
            std::thread::sleep(Duration::from_millis(62));
        }
        drained
    });
    b.send(json!({"cmd": "accept_file", "id": id}));
    // The sender's first progress report comes at 8 MiB: the bytes are on their way.
    a.wait_event("file_progress");
    // Chat round trips while bob's disk crawls: each message is acknowledged by bob's core.
    let mut rtts = Vec::new();
    for n in 0..10 {
        let started = Instant::now();
        a.send(json!({"cmd": "send", "room": "general", "text": format!("ping {n}")}));
        let sent = a.wait_event("sent");
        a.wait_for("delivered", |e| e["event"] == "delivered" && e["id"] == sent["id"]);
        rtts.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("chat round trips with the receiver's disk at 256 KiB/s: {rtts:?}");
    let drained = reader.join().unwrap();
    // The pipe took a few MiB at most: the file was far from written while bob chatted.
    assert!(drained < 8 * 1024 * 1024, "{drained}");
    // A loop that waited for the disk would sit seconds on each 1 MiB buffer it flushes.
    let worst = rtts.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(2), "chat round trips {rtts:?}");
    a.send(json!({"cmd": "cancel_file", "id": id}));
    assert_eq!(a.quit(), 0);
    b.kill();
}
