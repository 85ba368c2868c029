//! A hub that is a real man in the middle. The attacker runs the hub, so it can show each
//! person a different room: alice's hub holds alice and the attacker's "bob", bob's holds bob
//! and the attacker's "alice". The attacker's members are ordinary `kith headless` processes
//! with keys it made (it holds the private halves), so every Noise handshake completes and the
//! attacker reads what reaches it and can pass it on, re-encrypted, to the other side. Only the
//! keys give it away:
//! - to friends who met before, the attacker's key under a friend's name (or a name that looks
//!   like it) is the loud `identity_changed` warning, nothing is sent to it before the user
//!   accepts it, and what it says is marked as coming from an unconfirmed key;
//! - to people meeting for the first time, the safety numbers they compare differ.

mod common;

use std::time::Duration;

use common::{HubProc, Peer};
use serde_json::{Value, json};

fn secure_with(p: &mut Peer, fp: &str) -> Value {
    p.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fp)
}

fn message_from(p: &mut Peer, fp: &str, text: &str) -> Value {
    p.wait_for("message", |e| e["event"] == "message" && e["from"] == fp && e["text"] == text)
}

fn got_any_message(p: &Peer) -> bool {
    p.log.iter().any(|e| e["event"] == "message")
}

/// The attacker's two hubs, one per victim, and a member of its own on each.
struct Attacker {
    _hubs: [HubProc; 2],
    addrs: [String; 2],
}

impl Attacker {
    fn start(dir: &std::path::Path) -> Self {
        let h1 = HubProc::start(&dir.join("evil-hub-1"), "pw", &[]);
        let h2 = HubProc::start(&dir.join("evil-hub-2"), "pw", &[]);
        let addrs = [h1.addr.clone(), h2.addr.clone()];
        Self { _hubs: [h1, h2], addrs }
    }
}

#[test]
fn friends_who_met_before_are_warned_under_their_names_and_under_look_alikes() {
    // The attacker's members take the exact names, then names that only look like them
    // (Cyrillic а and о, a capital letter).
    for (fake_alice, fake_bob) in [("alice", "bob"), ("\u{0430}lice", "B\u{043E}b")] {
        let dir = tempfile::tempdir().unwrap();
        // They meet on an honest hub and bob's key is verified.
        let honest = HubProc::start(&dir.path().join("hub"), "pw", &[]);
        let (mut alice, mut bob) = common::secure_pair(dir.path(), &honest.addr, "pw");
        let alice_fp = alice.fingerprint();
        let bob_fp = bob.fingerprint();
        alice.send(json!({"cmd": "verify", "peer": bob_fp}));
        alice.wait_for("verified", |e| e["event"] == "verified" && e["peer"] == bob_fp.as_str());
        assert_eq!(alice.quit(), 0);
        assert_eq!(bob.quit(), 0);
        drop(honest);

        // Later they reach each other through the attacker's hub.
        let evil = Attacker::start(dir.path());
        let mut alice = Peer::join("alice", &dir.path().join("alice"), &evil.addrs[0], "pw");
        let mut bob = Peer::join("bob", &dir.path().join("bob"), &evil.addrs[1], "pw");
        let mut fake_b = Peer::join(fake_bob, &dir.path().join("fake-bob"), &evil.addrs[0], "pw");
        let mut fake_a = Peer::join(fake_alice, &dir.path().join("fake-alice"), &evil.addrs[1], "pw");
        let fake_b_fp = fake_b.fingerprint();
        let fake_a_fp = fake_a.fingerprint();

        for (victim, fake_fp, real_fp) in
            [(&mut alice, &fake_b_fp, &bob_fp), (&mut bob, &fake_a_fp, &alice_fp)]
        {
            let changed = victim.wait_for("identity_changed", |e| e["event"] == "identity_changed");
            assert_eq!(changed["old"], real_fp.as_str(), "{fake_bob}: {changed}");
            assert_eq!(changed["new"], fake_fp.as_str());
            let secure = secure_with(victim, fake_fp);
            assert_eq!(secure["identity_changed"], true, "{secure}");
            assert_eq!(secure["verified"], false, "{secure}");
        }
        // The handshakes completed: the attacker holds sessions with both of them.
        secure_with(&mut fake_b, &alice_fp);
        secure_with(&mut fake_a, &bob_fp);

        // Nothing goes to the impostor until alice accepts the new key.
        alice.send(json!({"cmd": "send", "room": "general", "text": "the door code is 4711"}));
        alice.wait_for("refusal", |e| e["event"] == "error" && e["code"] == "identity_unacknowledged");
        fake_b.drain(Duration::from_secs(1));
        assert!(!got_any_message(&fake_b), "the impostor read: {:#?}", fake_b.log);

        // What the impostor says is not shown as bob's ordinary words.
        fake_b.send(json!({"cmd": "send", "room": "general", "text": "it's bob, what was the code?"}));
        let m = message_from(&mut alice, &fake_b_fp, "it's bob, what was the code?");
        assert_eq!(m["unconfirmed"], true, "{m}");

        // Accepting the key is what lets words through: from then on the attacker reads them.
        alice.send(json!({"cmd": "acknowledge_change", "peer": fake_b_fp}));
        alice.wait_for("change_acknowledged", |e| e["event"] == "change_acknowledged");
        alice.send(json!({"cmd": "send", "room": "general", "text": "fine, it is 4711"}));
        message_from(&mut fake_b, &alice_fp, "fine, it is 4711");
        fake_b.send(json!({"cmd": "send", "room": "general", "text": "thanks"}));
        let m = message_from(&mut alice, &fake_b_fp, "thanks");
        assert_eq!(m["unconfirmed"], false, "{m}");
        // Bob has not accepted the attacker's "alice": what it relays to him stays marked.
        fake_a.send(json!({"cmd": "send", "room": "general", "text": "fine, it is 4711"}));
        let m = message_from(&mut bob, &fake_a_fp, "fine, it is 4711");
        assert_eq!(m["unconfirmed"], true, "{m}");
    }
}

#[test]
fn people_meeting_for_the_first_time_through_it_see_different_safety_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let evil = Attacker::start(dir.path());
    let mut carol = Peer::join("carol", &dir.path().join("carol"), &evil.addrs[0], "pw");
    let mut dave = Peer::join("dave", &dir.path().join("dave"), &evil.addrs[1], "pw");
    let mut fake_dave = Peer::join("dave", &dir.path().join("fake-dave"), &evil.addrs[0], "pw");
    let mut fake_carol = Peer::join("carol", &dir.path().join("fake-carol"), &evil.addrs[1], "pw");
    let (carol_fp, dave_fp) = (carol.fingerprint(), dave.fingerprint());
    let (fake_dave_fp, fake_carol_fp) = (fake_dave.fingerprint(), fake_carol.fingerprint());

    let carol_sees = secure_with(&mut carol, &fake_dave_fp);
    let dave_sees = secure_with(&mut dave, &fake_carol_fp);
    // A first meeting raises no warning: there is nothing to compare with yet...
    assert_eq!(carol_sees["identity_changed"], false);
    assert_eq!(carol_sees["name"], "dave");
    assert_eq!(dave_sees["name"], "carol");
    // ...and the attacker passes words on both ways, re-encrypted, so the chat looks normal.
    let with_carol = secure_with(&mut fake_dave, &carol_fp);
    secure_with(&mut fake_carol, &dave_fp);
    carol.send(json!({"cmd": "send", "room": "general", "text": "hi dave"}));
    let read = message_from(&mut fake_dave, &carol_fp, "hi dave");
    fake_carol.send(json!({"cmd": "send", "room": "general", "text": read["text"]}));
    let m = message_from(&mut dave, &fake_carol_fp, "hi dave");
    assert_eq!(m["name"], "carol");
    assert_eq!(m["unconfirmed"], false);
    // What the fingerprint dialog shows them to compare is what catches it: each computed the
    // safety number and the emoji with the attacker's key, so they do not match.
    assert_ne!(carol_sees["safety_number"], dave_sees["safety_number"]);
    assert_ne!(carol_sees["sas"], dave_sees["sas"]);
    // The attacker's halves match each side's: the numbers are honest about whom each talks to.
    assert_eq!(with_carol["safety_number"], carol_sees["safety_number"]);
}

/// An invitation closes the first-contact gap: it carries the hub's key and the inviter's, so
/// an attacker who took over the hub (it even holds the hub's key) and introduces its own
/// "alice" to someone joining with alice's invitation raises the identity-change warning at
/// the very first meeting; a hub with another key is refused outright.
#[test]
fn an_invitation_makes_a_substituted_inviter_a_loud_warning_at_first_contact() {
    use kith::protocol::invite::Invitation;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Peer::start("alice", &dir.path().join("alice"), &["--host", "127.0.0.1:0"], "pw");
    let alice_fp = alice.fingerprint();
    // Said when the hub is up, before ready.
    let invite = alice.log.iter().find(|e| e["event"] == "invite").cloned().expect("an invite event");
    let link = invite["link"].as_str().unwrap().to_string();
    assert!(link.starts_with("kith://join?"), "{link}");
    assert!(!link.contains("password"), "the password stays out unless asked for");
    assert!(invite["text"].as_str().unwrap().contains("alice's fingerprint"));

    // Honest: carol joins with the invitation and knows alice at once.
    let mut carol = Peer::start("carol", &dir.path().join("carol"), &["--invite", &link], "pw");
    let seen = secure_with(&mut carol, &alice_fp);
    assert_eq!(seen["verified"], true, "{seen}");
    assert_eq!(seen["identity_changed"], false, "{seen}");
    assert!(!carol.log.iter().any(|e| e["event"] == "identity_changed"));
    // An invitation may name several addresses (LAN and public): one that does not answer is
    // passed over for the next.
    let mut two = Invitation::parse(&link).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    two.hubs.insert(0, dead);
    let mut frank = Peer::start("frank", &dir.path().join("frank"), &["--invite", &two.to_link()], "pw");
    assert_eq!(secure_with(&mut frank, &alice_fp)["verified"], true);

    // The attacker runs the hub with alice's hub key and its own "alice" on it.
    let evil_profile = dir.path().join("evil-hub");
    std::fs::create_dir_all(&evil_profile).unwrap();
    std::fs::copy(dir.path().join("alice/hub.key"), evil_profile.join("hub.key")).unwrap();
    let evil = HubProc::start(&evil_profile, "pw", &[]);
    let mut fake_alice = Peer::join("alice", &dir.path().join("fake-alice"), &evil.addr, "pw");
    let fake_fp = fake_alice.fingerprint();
    let mut redirected = Invitation::parse(&link).unwrap();
    redirected.hubs = vec![evil.addr.clone()];
    let mut dave = Peer::start("dave", &dir.path().join("dave"), &["--invite", &redirected.to_link()], "pw");
    let changed = dave.wait_event("identity_changed");
    assert_eq!(changed["old"], alice_fp.as_str(), "{changed}");
    assert_eq!(changed["new"], fake_fp.as_str(), "{changed}");
    dave.send(json!({"cmd": "send", "room": "general", "text": "hi alice"}));
    dave.wait_for("refusal", |e| e["event"] == "error" && e["code"] == "identity_unacknowledged");
    secure_with(&mut fake_alice, &dave.fingerprint());
    fake_alice.drain(Duration::from_millis(500));
    assert!(!got_any_message(&fake_alice), "{:#?}", fake_alice.log);

    // A hub with a key of its own at the invitation's address is refused before anything.
    let other = HubProc::start(&dir.path().join("other-hub"), "pw", &[]);
    redirected.hubs = vec![other.addr.clone()];
    let mut erin = Peer::start("erin", &dir.path().join("erin"), &["--invite", &redirected.to_link()], "pw");
    assert_ne!(erin.wait_exit(), 0);
    assert!(erin.log.iter().any(|e| e["code"] == "hub_key_changed"), "{:#?}", erin.log);
}
