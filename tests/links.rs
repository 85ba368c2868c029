//! Direct peer links between real `kith headless` processes on 127.0.0.1: str0m over one UDP
//! socket each, signalled inside the Noise session the hub relays.

mod common;

use common::{HubProc, Peer, secure_pair};
use serde_json::json;

const PW: &str = "correct horse battery staple";

/// Waits for the `link` event announcing `kind` towards `peer`.
fn wait_link(p: &mut Peer, peer: &str, kind: &str) -> serde_json::Value {
    p.wait_for("link", |e| e["event"] == "link" && e["peer"] == peer && e["kind"] == kind)
}

#[test]
fn chat_moves_to_the_direct_link_and_keeps_going_without_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let (mut a, mut b) = secure_pair(dir.path(), &hub.addr, PW);
    let fa = a.fingerprint();
    let fb = b.fingerprint();
    let la = wait_link(&mut a, &fb, "direct");
    let lb = wait_link(&mut b, &fa, "direct");
    for l in [&la, &lb] {
        let rtt = l["rtt_ms"].as_u64().expect("a measured round trip");
        assert!(rtt < 1_000, "{l}");
    }
    a.send(json!({"cmd": "peers"}));
    let peers = a.wait_event("peers");
    assert_eq!(peers["peers"][0]["link"], "direct", "{peers}");

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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = |a: &Peer| {
        a.log.iter().filter(|e| e["event"] == "delivered").count() == N
            && a.log.iter().any(|e| e["event"] == "message" && e["text"] == "b 0")
    };
    while !done(&a) && std::time::Instant::now() < deadline {
        a.drain(std::time::Duration::from_millis(100));
    }
    assert!(done(&a), "{:#?}", a.log);
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
