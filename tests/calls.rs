//! Room calls between real `kith headless` processes through a real `kith hub`: ringing,
//! joining, hanging up, a member who restarts. (Call control only, so far: the voices come
//! with the media layer.)

mod common;

use common::{HubProc, Peer};
use serde_json::{Value, json};

const PW: &str = "pw";

fn call_state(p: &mut Peer, state: &str) -> Value {
    p.wait_for(&format!("call {state}"), |e| e["event"] == "call" && e["state"] == state)
}

fn member(p: &mut Peer, peer: &str, state: &str) -> Value {
    p.wait_for(&format!("call_member {peer} {state}"), |e| {
        e["event"] == "call_member" && e["peer"] == peer && e["state"] == state
    })
}

fn members(e: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        e["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Waits until `p` holds a session with each of `others`.
fn secure_with_all(p: &mut Peer, others: &[&str]) {
    for o in others {
        let o = o.to_string();
        p.wait_until(&format!("a session with {o}"), |p| {
            p.log.iter().any(|e| e["event"] == "peer_secure" && e["peer"] == o.as_str())
        });
    }
}

#[test]
fn three_people_ring_join_and_the_call_outlives_the_caller_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut alice = Peer::join("alice", &dir.path().join("alice"), &hub.addr, PW);
    let bob_args = ["--hub", hub.addr.as_str(), "--auto-answer"];
    let mut bob = Peer::start("bob", &dir.path().join("bob"), &bob_args, PW);
    let mut carol = Peer::join("carol", &dir.path().join("carol"), &hub.addr, PW);
    let (fa, fb, fc) = (alice.fingerprint(), bob.fingerprint(), carol.fingerprint());
    secure_with_all(&mut alice, &[&fb, &fc]);
    secure_with_all(&mut bob, &[&fa, &fc]);
    secure_with_all(&mut carol, &[&fa, &fb]);

    // A call outside our rooms is refused in words.
    alice.send(json!({"cmd": "call", "room": "elsewhere"}));
    alice.wait_for("refusal", |e| e["event"] == "error" && e["code"] == "not_in_room");

    alice.send(json!({"cmd": "call", "room": "general"}));
    assert_eq!(members(&call_state(&mut alice, "joined")), Vec::<String>::new());
    // It rings at carol's; bob answers by himself.
    let ringing = call_state(&mut carol, "ringing");
    assert_eq!(ringing["room"], "general");
    assert_eq!(members(&ringing), sorted(&[&fa]));
    call_state(&mut bob, "ringing");
    assert_eq!(members(&call_state(&mut bob, "joined")), sorted(&[&fa]));
    member(&mut alice, &fb, "joined");

    carol.send(json!({"cmd": "call", "room": "general"}));
    assert_eq!(members(&call_state(&mut carol, "joined")), sorted(&[&fa, &fb]));
    member(&mut alice, &fc, "joined");
    member(&mut bob, &fc, "joined");
    // The caller hangs up; the other two stay in the call.
    alice.send(json!({"cmd": "hangup"}));
    assert_eq!(members(&call_state(&mut alice, "left")), sorted(&[&fb, &fc]));
    member(&mut bob, &fa, "left");
    member(&mut carol, &fa, "left");
    assert!(
        !bob.log.iter().any(|e| e["event"] == "call" && e["state"] != "ringing" && e["state"] != "joined")
    );

    // Carol's process restarts: she is out of the call, and back in when she joins it.
    carol.kill();
    member(&mut bob, &fc, "left");
    let mut carol = Peer::join("carol", &dir.path().join("carol"), &hub.addr, PW);
    let running = call_state(&mut carol, "running");
    assert_eq!(members(&running), sorted(&[&fb]), "{running}");
    carol.send(json!({"cmd": "call", "room": "general"}));
    assert_eq!(members(&call_state(&mut carol, "joined")), sorted(&[&fb]));
    member(&mut bob, &fc, "joined");

    // The last two leave: the call ends for everyone who knew of it.
    bob.send(json!({"cmd": "hangup"}));
    carol.send(json!({"cmd": "hangup"}));
    for p in [&mut alice, &mut bob, &mut carol] {
        call_state(p, "ended");
    }
    bob.send(json!({"cmd": "hangup"}));
    bob.wait_for("refusal", |e| e["event"] == "error" && e["code"] == "no_call");
}
