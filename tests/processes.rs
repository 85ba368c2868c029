//! Real `kith hub` and `kith headless` processes on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{HubProc, Peer, secure_pair};
use serde_json::json;

const PW: &str = "correct horse battery staple";

/// Queues `n` messages "`prefix` 0" … in one write.
fn send_numbered(p: &mut Peer, prefix: &str, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| json!({"cmd": "send", "room": "general", "text": format!("{prefix} {i}")}).to_string())
        .collect();
    p.send_raw(&lines.join("\n"));
}

/// Two secure peers whose hub has just gone away; the closure starts it again at the same
/// address with the same key. Without direct links (`--no-direct`), so what they send while
/// it is down can only go through it.
fn pair_with_hub_down(dir: &std::path::Path) -> (Peer, Peer, impl FnOnce() -> HubProc) {
    let hub_profile = dir.join("hub");
    let hub = HubProc::start(&hub_profile, PW, &[]);
    let addr = hub.addr.clone();
    let (mut a, mut b) = common::secure_pair_with(dir, &addr, PW, &["--no-direct"]);
    drop(hub);
    a.wait_event("disconnected");
    b.wait_event("disconnected");
    (a, b, move || HubProc::start_on(&hub_profile, &addr, PW, &[]))
}

#[test]
fn chat_both_ways_with_delivery_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);

    a.send(json!({"cmd": "send", "room": "general", "text": "hello bob"}));
    let sent = a.wait_event("sent");
    let got = b.wait_event("message");
    assert_eq!(got["text"], "hello bob");
    assert_eq!(got["name"], "alice");
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["room"], "general");
    assert!(got["expires_at"].is_null());
    let delivered = a.wait_event("delivered");
    assert_eq!(delivered["id"], sent["id"]);

    b.send(json!({"cmd": "send", "room": "general", "text": "hi alice ✓ — ünïcödé"}));
    let got = a.wait_event("message");
    assert_eq!(got["text"], "hi alice ✓ — ünïcödé");
    assert_eq!(got["name"], "bob");

    // Verification is remembered in the profile.
    let bob_fp = got["from"].as_str().unwrap().to_string();
    a.send(json!({"cmd": "verify", "peer": bob_fp}));
    let v = a.wait_event("verified");
    assert_eq!(v["verified"], true);
    a.send(json!({"cmd": "peers"}));
    let peers = a.wait_event("peers");
    assert_eq!(peers["peers"][0]["verified"], true);
    assert_eq!(peers["peers"][0]["secure"], true);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
    let known = std::fs::read_to_string(dir.path().join("alice/known_peers.json")).unwrap();
    assert!(known.contains("\"verified\": true"), "{known}");
}

#[test]
fn thousand_messages_arrive_in_order_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);
    const N: usize = 1000;
    send_numbered(&mut a, "msg", N);
    let got = b.collect(N, |e| e["event"] == "message");
    let texts: Vec<String> = got.iter().map(|e| e["text"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("msg {i}")).collect();
    assert_eq!(texts, expected);
    let delivered = a.collect(N, |e| e["event"] == "delivered");
    let mut ids: Vec<&str> = delivered.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N);
    // Nothing more arrives: no duplicates in flight.
    b.send(json!({"cmd": "peers"}));
    b.wait_event("peers");
    assert_eq!(b.log.iter().filter(|e| e["event"] == "message").count(), N);
}

#[test]
fn ephemeral_messages_expire_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);
    a.send(json!({"cmd": "send", "room": "general", "text": "burn after reading", "expires_in_s": 1}));
    let sent = a.wait_event("sent");
    let id = sent["id"].as_str().unwrap().to_string();
    let got = b.wait_event("message");
    let expires_at = got["expires_at"].as_u64().expect("expires_at set");
    assert!(expires_at >= got["sent_at"].as_u64().unwrap() + 1000);
    let ea = a.wait_for("expired", |e| e["event"] == "expired" && e["id"] == id.as_str());
    let eb = b.wait_for("expired", |e| e["event"] == "expired" && e["id"] == id.as_str());
    assert_eq!(ea["id"], eb["id"]);
}

#[test]
fn wrong_password_is_refused_before_anything_is_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    a.fingerprint();
    let mut eve = Peer::join("eve", &dir.path().join("eve"), &hub.addr, "guess");
    assert_ne!(eve.wait_exit(), 0);
    assert_eq!(eve.log.len(), 1, "only the error: {:#?}", eve.log);
    assert_eq!(eve.log[0]["event"], "error");
    assert_eq!(eve.log[0]["code"], "auth_failed");
    assert_eq!(eve.log[0]["fatal"], true);
    // Alice never hears of eve.
    a.send(json!({"cmd": "peers"}));
    let peers = a.wait_event("peers");
    assert_eq!(peers["peers"], json!([]));
    assert!(!a.log.iter().any(|e| e["event"] == "peer_joined"));
}

#[test]
fn repeated_failures_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut codes = Vec::new();
    for i in 0..6 {
        let mut eve = Peer::join("eve", &dir.path().join(format!("eve{i}")), &hub.addr, "guess");
        assert_ne!(eve.wait_exit(), 0);
        codes.push(eve.log[0]["code"].as_str().unwrap().to_string());
    }
    assert_eq!(&codes[..5], ["auth_failed"; 5]);
    assert_eq!(codes[5], "rate_limited");
}

#[test]
fn unreachable_hub_is_a_fatal_error() {
    let dir = tempfile::tempdir().unwrap();
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut p = Peer::join("alice", &dir.path().join("a"), &format!("127.0.0.1:{port}"), PW);
    assert_ne!(p.wait_exit(), 0);
    assert_eq!(p.log[0]["code"], "hub_unreachable");
}

#[test]
fn a_second_process_on_one_profile_is_refused_and_the_first_keeps_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    let fp = a.fingerprint();
    let mut again = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    assert_ne!(again.wait_exit(), 0);
    let err = &again.log[0];
    assert_eq!(err["code"], "profile", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("in use by another Kith") && message.contains(&a.child.id().to_string()),
        "{message}"
    );
    assert_eq!(a.quit(), 0);
    let mut later = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    assert_eq!(later.fingerprint(), fp);
    assert_eq!(later.quit(), 0);
}

/// The safety number belongs to the pair of identities and survives restarts; the emoji
/// (SAS) belong to one session and change with the next.
#[test]
fn the_safety_number_stays_across_restarts_and_the_emoji_change_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);
        let fb = b.fingerprint();
        let secure =
            a.log.iter().find(|e| e["event"] == "peer_secure" && e["peer"] == fb.as_str()).cloned().unwrap();
        seen.push((secure["safety_number"].clone(), secure["sas"].clone(), secure["sas_digits"].clone()));
        assert_eq!(a.quit(), 0);
        assert_eq!(b.quit(), 0);
    }
    assert_eq!(seen[0].0, seen[1].0, "the safety number is the pair's");
    assert_ne!(seen[0].1, seen[1].1, "each session has its own emoji");
    assert_ne!(seen[0].2, seen[1].2, "and its own digits");
}

/// `kith headless … < /dev/null` is a listener: the end of its input is not a quit.
#[test]
fn the_end_of_input_is_not_a_quit() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);
    b.stdin = None;
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(b.child.try_wait().unwrap().is_none(), "it exited at the end of its input");
    a.send(json!({"cmd": "send", "room": "general", "text": "anyone listening?"}));
    assert_eq!(b.wait_event("message")["text"], "anyone listening?");
    a.wait_event("delivered");
}

#[test]
fn bad_command_lines_are_errors_not_exits() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    a.fingerprint();
    a.wait_event("joined");
    for line in ["not json", "{\"cmd\":\"launch\"}", "{\"cmd\":\"send\"}", "[1,2]"] {
        a.send_raw(line);
        let e = a.wait_event("error");
        assert_eq!(e["code"], "bad_command", "{line}");
    }
    a.send(json!({"cmd": "send", "room": "nowhere", "text": "x"}));
    assert_eq!(a.wait_event("error")["code"], "not_in_room");
    a.send(json!({"cmd": "send", "room": "general", "text": "x".repeat(20_000)}));
    assert_eq!(a.wait_event("error")["code"], "bad_text");
    assert_eq!(a.quit(), 0);
}

#[test]
fn new_identity_under_known_name_raises_identity_changed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);
    let old = b.fingerprint();
    assert_eq!(b.quit(), 0);
    a.wait_event("peer_left");
    // Bob comes back with a fresh profile: a new identity key under the same name.
    let mut b2 = Peer::join("bob", &dir.path().join("bob-new"), &hub.addr, PW);
    let new = b2.fingerprint();
    assert_ne!(old, new);
    let changed = a.wait_event("identity_changed");
    assert_eq!(changed["name"], "bob");
    assert_eq!(changed["old"], old.as_str());
    assert_eq!(changed["new"], new.as_str());
    let secure = a.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == new.as_str());
    assert_eq!(secure["verified"], false);
    assert_eq!(secure["identity_changed"], true);
    // Nothing goes to the new key until alice has accepted it.
    a.send(json!({"cmd": "send", "room": "general", "text": "are you really bob?", "tag": "t1"}));
    let refused = a.wait_event("error");
    assert_eq!(refused["code"], "identity_unacknowledged");
    assert_eq!(refused["tag"], "t1");
    a.send(json!({"cmd": "acknowledge_change", "peer": new}));
    assert_eq!(a.wait_event("change_acknowledged")["peer"], new.as_str());
    a.send(json!({"cmd": "send", "room": "general", "text": "welcome back", "tag": "t2"}));
    assert_eq!(a.wait_event("sent")["tag"], "t2");
    assert_eq!(b2.wait_event("message")["text"], "welcome back");
}

#[test]
fn messages_sent_while_the_hub_is_down_arrive_after_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, restart_hub) = pair_with_hub_down(dir.path());
    a.send(json!({"cmd": "send", "room": "general", "text": "queued while down"}));
    a.wait_event("sent");
    // Same address, same hub key: both reconnect by themselves.
    let _hub = restart_hub();
    a.wait_event("reconnected");
    let got = b.wait_event("message");
    assert_eq!(got["text"], "queued while down");
    a.wait_event("delivered");
    assert_eq!(b.log.iter().filter(|e| e["event"] == "message").count(), 1);
}

#[test]
fn changed_hub_key_is_refused_and_trusting_a_new_one_holds_for_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub1"), PW, &[]);
    let addr = hub.addr.clone();
    let mut a = Peer::join("alice", &dir.path().join("alice"), &addr, PW);
    a.fingerprint();
    assert_eq!(a.quit(), 0);
    drop(hub);
    // Another hub (another key) at the same address.
    let _other = HubProc::start_on(&dir.path().join("hub2"), &addr, PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &addr, PW);
    assert_ne!(a.wait_exit(), 0);
    assert_eq!(a.log[0]["code"], "hub_key_changed");
    let mut a =
        Peer::start("alice", &dir.path().join("alice"), &["--hub", &addr, "--accept-new-hub-key"], PW);
    a.fingerprint();
    // Trusting the new key was for that connection: a third key at the address, met on a
    // reconnect of the same process, is refused like the second was.
    drop(_other);
    let third = HubProc::start_on(&dir.path().join("hub3"), &addr, PW, &[]);
    assert_ne!(a.wait_exit(), 0);
    assert!(a.log.iter().any(|e| e["code"] == "hub_key_changed"), "{:?}", a.log);
    // The second key is the pinned one now: a start without the flag connects to it.
    drop(third);
    let _second = HubProc::start_on(&dir.path().join("hub2"), &addr, PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &addr, PW);
    a.fingerprint();
    assert_eq!(a.quit(), 0);
}

#[test]
fn hosting_embeds_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Peer::start("alice", &dir.path().join("alice"), &["--host", "127.0.0.1:0"], PW);
    let hosting = host.wait_event("hosting");
    let addr = hosting["addr"].as_str().unwrap().to_string();
    let fa = host.fingerprint();
    let mut b = Peer::join("bob", &dir.path().join("bob"), &addr, PW);
    b.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fa.as_str());
    b.send(json!({"cmd": "send", "room": "general", "text": "hi host"}));
    assert_eq!(host.wait_event("message")["text"], "hi host");
    assert_eq!(host.quit(), 0);
    b.wait_event("disconnected");
}

#[test]
fn hostile_connections_are_closed_while_honest_clients_chat() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &["--auth-timeout", "1"]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);

    let closed_within = |mut s: TcpStream, limit: Duration| {
        s.set_read_timeout(Some(limit)).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
                Err(e) => panic!("hub kept a hostile connection open: {e}"),
            }
        }
    };
    // Garbage in place of a handshake.
    let mut garbage = TcpStream::connect(&hub.addr).unwrap();
    garbage.write_all(&[0, 0, 0, 40]).unwrap();
    garbage.write_all(&[0x5a; 40]).unwrap();
    // A frame header claiming 4 GiB.
    let mut oversized = TcpStream::connect(&hub.addr).unwrap();
    oversized.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    // Half-open: connects, sends half a frame, then nothing.
    let mut half = TcpStream::connect(&hub.addr).unwrap();
    half.write_all(&[0, 0, 0, 32, 1, 2]).unwrap();
    let silent = TcpStream::connect(&hub.addr).unwrap();

    // Honest clients keep chatting meanwhile.
    a.send(json!({"cmd": "send", "room": "general", "text": "still here"}));
    assert_eq!(b.wait_event("message")["text"], "still here");

    closed_within(garbage, Duration::from_secs(5));
    closed_within(oversized, Duration::from_secs(5));
    closed_within(half, Duration::from_secs(10));
    closed_within(silent, Duration::from_secs(10));

    b.send(json!({"cmd": "send", "room": "general", "text": "and still here"}));
    assert_eq!(a.wait_event("message")["text"], "and still here");
}

#[test]
fn a_server_that_hangs_up_before_authentication_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in listener.incoming().take(3) {
            drop(s);
        }
    });
    let mut p = Peer::join("alice", &dir.path().join("a"), &addr, PW);
    assert_ne!(p.wait_exit(), 0);
    assert_eq!(p.log.last().unwrap()["code"], "hub_refused", "{:#?}", p.log);
}

#[test]
fn a_large_backlog_reaches_a_returning_peer_without_flooding_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, restart_hub) = pair_with_hub_down(dir.path());
    // More than the hub queues towards one client: only the send window may be in flight.
    const N: usize = 3000;
    send_numbered(&mut a, "backlog", N);
    a.collect(N, |e| e["event"] == "sent");
    let _hub = restart_hub();
    let got = b.collect(N, |e| e["event"] == "message");
    let texts: Vec<&str> = got.iter().map(|e| e["text"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("backlog {i}")).collect();
    assert_eq!(texts, expected);
    a.collect(N, |e| e["event"] == "delivered");
    let drops = b.log.iter().filter(|e| e["event"] == "disconnected").count();
    assert_eq!(drops, 1, "bob was dropped as a slow reader: {drops} disconnections");
}

#[test]
fn a_headless_front_end_that_stops_reading_does_not_stall_its_links() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut a = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    // Bob's events go to a pipe nobody reads: it fills after a few hundred lines, then the
    // channel to his front-end after a few thousand events.
    let mut bob = std::process::Command::new(common::KITH)
        .env("RUST_LOG", "warn")
        .arg("--profile")
        .arg(dir.path().join("bob"))
        .args(["headless", "--name", "bob", "--password", PW, "--hub", &hub.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let _unread = bob.stdout.take();
    a.wait_event("peer_secure");
    // Every message needs bob's core to acknowledge it, and only 256 may be in flight: if
    // his network loop waited for the front-end, the receipts would stop.
    const N: usize = 8000;
    send_numbered(&mut a, "msg", N);
    let delivered = a.collect(N, |e| e["event"] == "delivered");
    assert_eq!(delivered.len(), N);
    let _ = bob.kill();
    let _ = bob.wait();
    assert_eq!(a.quit(), 0);
}
