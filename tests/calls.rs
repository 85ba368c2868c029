//! Room calls between real `kith headless` processes through a real `kith hub`: ringing,
//! joining, hanging up, a member who restarts, and the voices: each member's microphone is a
//! tone of its own (440, 660, 880 Hz), and each says, in `media_stats`, which tone it decodes
//! from whom.

mod common;

use common::lossy_net::LossyNet;
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

/// Waits until `p` reports decoding `hz` from `peer` (within 5 Hz), and returns the report.
fn hears(p: &mut Peer, peer: &str, hz: u64) -> Value {
    p.wait_for(&format!("{hz} Hz from {peer}"), |e| {
        e["event"] == "media_stats"
            && e["peer"] == peer
            && e["audio"]["freq_hz"].as_u64().is_some_and(|f| f.abs_diff(hz) <= 5)
    })
}

fn start(name: &str, dir: &std::path::Path, hub: &HubProc, tone: u32, auto_answer: bool) -> Peer {
    let mic = format!("tone:{tone}");
    let mut args = vec!["--hub", hub.addr.as_str(), "--mic", mic.as_str(), "--speaker", "null"];
    if auto_answer {
        args.push("--auto-answer");
    }
    Peer::start(name, &dir.join(name), &args, PW)
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

/// Waits until `p` has a direct link to each of `others`.
fn linked_with_all(p: &mut Peer, others: &[&str]) {
    for o in others {
        let o = o.to_string();
        p.wait_until(&format!("a direct link with {o}"), |p| {
            p.log.iter().any(|e| e["event"] == "link" && e["peer"] == o.as_str() && e["kind"] == "direct")
        });
    }
}

/// The tests take turns: each runs several media threads, and on a two-core machine the
/// other's would be the jitter they measure.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn three_people_ring_join_and_the_call_outlives_the_caller_and_a_restart() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut alice = start("alice", dir.path(), &hub, 440, false);
    let mut bob = start("bob", dir.path(), &hub, 660, true);
    let mut carol = start("carol", dir.path(), &hub, 880, false);
    let (fa, fb, fc) = (alice.fingerprint(), bob.fingerprint(), carol.fingerprint());
    secure_with_all(&mut alice, &[&fb, &fc]);
    secure_with_all(&mut bob, &[&fa, &fc]);
    secure_with_all(&mut carol, &[&fa, &fb]);
    linked_with_all(&mut alice, &[&fb, &fc]);
    linked_with_all(&mut bob, &[&fa, &fc]);
    linked_with_all(&mut carol, &[&fa, &fb]);

    // A call outside our rooms is refused in words.
    alice.send(json!({"cmd": "call", "room": "elsewhere"}));
    alice.wait_for("refusal", |e| e["event"] == "error" && e["code"] == "not_in_room");

    alice.send(json!({"cmd": "call", "room": "general"}));
    assert_eq!(members(&call_state(&mut alice, "joined")), Vec::<String>::new());
    // It rings at carol's; bob answers by himself.
    // (Bob may answer before alice's ring reaches carol: then he is in the list too.)
    let ringing = call_state(&mut carol, "ringing");
    assert_eq!(ringing["room"], "general");
    assert!(members(&ringing).contains(&fa), "{ringing}");
    call_state(&mut bob, "ringing");
    assert_eq!(members(&call_state(&mut bob, "joined")), sorted(&[&fa]));
    // The link carries the call to him.
    assert_eq!(member(&mut alice, &fb, "joined")["link"], "open");

    carol.send(json!({"cmd": "call", "room": "general"}));
    // Carol lists whom she knows in the call as she joins: alice, and bob unless his own
    // announcement is still on its way to her (then he comes as a member who joined).
    let joined = members(&call_state(&mut carol, "joined"));
    assert!(joined.contains(&fa) && joined.iter().all(|m| *m == fa || *m == fb), "{joined:?}");
    if !joined.contains(&fb) {
        member(&mut carol, &fb, "joined");
    }
    member(&mut alice, &fc, "joined");
    member(&mut bob, &fc, "joined");
    // Everyone hears both others' tones, encoded once and sent to each.
    for (p, a, fa_, b, fb_) in
        [(&mut alice, &fb, 660, &fc, 880), (&mut bob, &fa, 440, &fc, 880), (&mut carol, &fa, 440, &fb, 660)]
    {
        let first = hears(p, a, fa_);
        hears(p, b, fb_);
        assert!(first["audio"]["packets"].as_u64().unwrap() > 10, "{first}");
        assert!(first["audio"]["level_db"].as_i64().unwrap() > -30, "{first}");
    }
    // Loopback loses nothing, so once the buffers settled the frames missing in five seconds are
    // only ones that came late because this machine was busy (CI runs five Kith processes on
    // two cores here): a few, never a stream of them.
    let before = hears(&mut alice, &fb, 660);
    for _ in 0..5 {
        hears(&mut alice, &fb, 660);
    }
    let after = hears(&mut alice, &fb, 660);
    let lost = |e: &Value| e["audio"]["lost"].as_u64().unwrap();
    let packets = |e: &Value| e["audio"]["packets"].as_u64().unwrap();
    let (missing, played) = (lost(&after) - lost(&before), packets(&after) - packets(&before));
    assert!(missing * 20 <= played, "frames went missing on loopback: {before} then {after}");
    // The caller hangs up; the other two stay in the call.
    alice.send(json!({"cmd": "hangup"}));
    assert_eq!(members(&call_state(&mut alice, "left")), sorted(&[&fb, &fc]));
    member(&mut bob, &fa, "left");
    member(&mut carol, &fa, "left");
    assert!(
        !bob.log.iter().any(|e| e["event"] == "call" && e["state"] != "ringing" && e["state"] != "joined")
    );
    hears(&mut bob, &fc, 880);
    hears(&mut carol, &fb, 660);
    // Muted, bob's tone stops reaching carol; unmuted, it comes back.
    bob.send(json!({"cmd": "mute", "on": true}));
    carol.wait_for("bob silent", |e| {
        e["event"] == "media_stats" && e["peer"] == fb.as_str() && e["audio"]["freq_hz"].is_null()
    });
    bob.send(json!({"cmd": "mute", "on": false}));
    hears(&mut carol, &fb, 660);

    // Carol's process restarts: she is out of the call, and back in when she joins it.
    carol.kill();
    member(&mut bob, &fc, "left");
    let mut carol = start("carol", dir.path(), &hub, 880, false);
    let running = call_state(&mut carol, "running");
    assert_eq!(members(&running), sorted(&[&fb]), "{running}");
    carol.send(json!({"cmd": "call", "room": "general"}));
    assert_eq!(members(&call_state(&mut carol, "joined")), sorted(&[&fb]));
    member(&mut bob, &fc, "joined");
    hears(&mut bob, &fc, 880);
    hears(&mut carol, &fb, 660);

    // The last two leave: the call ends for everyone who knew of it.
    bob.send(json!({"cmd": "hangup"}));
    carol.send(json!({"cmd": "hangup"}));
    for p in [&mut alice, &mut bob, &mut carol] {
        call_state(p, "ended");
    }
    bob.send(json!({"cmd": "hangup"}));
    bob.wait_for("refusal", |e| e["event"] == "error" && e["code"] == "no_call");
}

#[test]
fn a_call_on_a_path_that_drops_a_tenth_of_the_datagrams_goes_on_with_fec_and_concealment() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = LossyNet::up("kith-call-loss", 10) else { return };
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start_in(Some(&net.name), &dir.path().join("hub"), "127.0.0.1:0", PW, &[]);
    let start = |name: &str, tone: &str, extra: &[&str]| {
        let mut args = vec!["--hub", hub.addr.as_str(), "--mic", tone, "--speaker", "null"];
        args.extend_from_slice(extra);
        Peer::start_in(&net.name, name, &dir.path().join(name), &args, PW)
    };
    let mut alice = start("alice", "tone:440", &[]);
    let mut bob = start("bob", "tone:660", &["--auto-answer"]);
    let (fa, fb) = (alice.fingerprint(), bob.fingerprint());
    secure_with_all(&mut alice, &[&fb]);
    // The link comes up through the loss (ICE and DTLS retransmit).
    alice.wait_for("a direct link", |e| e["event"] == "link" && e["peer"] == fb.as_str());
    alice.send(json!({"cmd": "call", "room": "general"}));
    call_state(&mut bob, "joined");
    hears(&mut alice, &fb, 660);
    hears(&mut bob, &fa, 440);
    // Ten seconds of call: both tones still arrive, and the losses were repaired.
    for _ in 0..10 {
        hears(&mut bob, &fa, 440);
    }
    let last = hears(&mut bob, &fa, 440);
    let a = &last["audio"];
    let (packets, lost) = (a["packets"].as_u64().unwrap(), a["lost"].as_u64().unwrap());
    assert!(packets > 400, "{last}");
    assert!(lost * 100 > packets * 3, "about a tenth of the frames went missing: {last}");
    assert!(a["recovered_fec"].as_u64().unwrap() > lost / 3, "FEC rebuilt many: {last}");
    // What FEC could not rebuild (a loss right after a loss) was concealed; a run where
    // FEC rebuilt every loss has nothing to conceal.
    let recovered = a["recovered_fec"].as_u64().unwrap();
    assert!(a["concealed_ms"].as_u64().unwrap() > 0 || recovered == lost, "the rest were concealed: {last}");
    // The call itself held: nobody left.
    assert!(!alice.log.iter().any(|e| e["event"] == "call_member" && e["state"] == "left"));
}

/// Someone with no direct link (here: `--no-direct`, as a network that blocks UDP would leave
/// them) joins the call: both sides are told it cannot reach them, and no audio flows through
/// the hub.
#[test]
fn a_member_reachable_only_through_the_hub_is_said_to_be_so() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut alice = start("alice", dir.path(), &hub, 440, false);
    let args = [
        "--hub",
        hub.addr.as_str(),
        "--mic",
        "tone:660",
        "--speaker",
        "null",
        "--auto-answer",
        "--no-direct",
    ];
    let mut dave = Peer::start("dave", &dir.path().join("dave"), &args, PW);
    let (fa, fd) = (alice.fingerprint(), dave.fingerprint());
    secure_with_all(&mut alice, &[&fd]);
    secure_with_all(&mut dave, &[&fa]);
    alice.send(json!({"cmd": "call", "room": "general"}));
    assert_eq!(members(&call_state(&mut dave, "joined")), sorted(&[&fa]));
    assert_eq!(member(&mut alice, &fd, "joined")["link"], "hub_only");
    // Three seconds in the call: no audio either way.
    alice.drain(std::time::Duration::from_secs(3));
    dave.drain(std::time::Duration::from_millis(100));
    assert!(
        !alice.log.iter().chain(&dave.log).any(|e| e["event"] == "media_stats"),
        "audio went through the hub"
    );
}

/// The mesh's limit: ten people in one call, each hearing all nine others (ten encoders,
/// ninety decoders on this machine), and the eleventh is refused in words.
#[test]
fn ten_people_hear_each_other_and_the_eleventh_is_refused() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    // Tones 50 Hz apart; all but the first answer by themselves.
    let mut people: Vec<Peer> =
        (0..10).map(|i| start(&format!("p{i}"), dir.path(), &hub, 300 + 50 * i, i > 0)).collect();
    let mut late = start("late", dir.path(), &hub, 900, false);
    let fps: Vec<String> = people.iter_mut().map(|p| p.fingerprint()).collect();
    for (i, p) in people.iter_mut().enumerate() {
        let others: Vec<&str> =
            fps.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| f.as_str()).collect();
        linked_with_all(p, &others);
    }
    people[0].send(json!({"cmd": "call", "room": "general"}));
    // Everyone hears everyone: media_stats with packets from each of the nine others.
    for (i, p) in people.iter_mut().enumerate() {
        let others: Vec<String> =
            fps.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| f.clone()).collect();
        p.wait_until("audio from all nine others", |p| {
            others.iter().all(|o| {
                p.log.iter().any(|e| {
                    e["event"] == "media_stats"
                        && e["peer"] == o.as_str()
                        && e["audio"]["packets"].as_u64() > Some(10)
                })
            })
        });
    }
    // The call is full: the eleventh, who sees it running, is told so and stays out.
    late.wait_until("the call running", |p| {
        p.log.iter().any(|e| e["event"] == "call" && members(e).len() == 10)
    });
    late.send(json!({"cmd": "call", "room": "general"}));
    let refused = late.wait_for("the refusal", |e| e["event"] == "error" && e["code"] == "call_refused");
    assert!(refused["message"].as_str().unwrap().contains("full (10 people)"), "{refused}");
    late.drain(std::time::Duration::from_secs(2));
    assert!(!late.log.iter().any(|e| e["event"] == "call" && e["state"] == "joined"));
    assert!(!late.log.iter().any(|e| e["event"] == "media_stats"));
}

/// Waits until `p` reports `peer`'s video decoded at `min_fps` or more, and returns the report.
fn sees(p: &mut Peer, peer: &str, min_fps: u64) -> Value {
    p.wait_for(&format!("video from {peer} at {min_fps} fps"), |e| {
        e["event"] == "media_stats"
            && e["peer"] == peer
            && e["video"]["fps"].as_u64().is_some_and(|f| f >= min_fps)
    })
}

fn video_args<'a>(hub: &'a HubProc, tone: &'a str) -> Vec<&'a str> {
    let mut args = vec!["--hub", hub.addr.as_str(), "--mic", tone, "--speaker", "null"];
    args.extend(["--camera", "test-pattern", "--video-size", "640x360", "--fps", "30"]);
    args
}

/// Three people with test-pattern cameras: each decodes both others at the rate they send,
/// the frame numbers in the pixels advance, and the capture-to-decoded time is read from them.
#[test]
fn three_people_see_each_other_with_one_encoder_each() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    let mut people: Vec<Peer> =
        [("alice", "tone:440", false), ("bob", "tone:660", true), ("carol", "tone:880", true)]
            .into_iter()
            .map(|(name, tone, answer)| {
                let mut args = video_args(&hub, tone);
                if answer {
                    args.push("--auto-answer");
                }
                Peer::start(name, &dir.path().join(name), &args, PW)
            })
            .collect();
    let fps: Vec<String> = people.iter_mut().map(|p| p.fingerprint()).collect();
    for (i, p) in people.iter_mut().enumerate() {
        let others: Vec<&str> =
            fps.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| f.as_str()).collect();
        secure_with_all(p, &others);
        linked_with_all(p, &others);
    }
    people[0].send(json!({"cmd": "call", "room": "general"}));
    call_state(&mut people[0], "joined");
    for (i, p) in people.iter_mut().enumerate() {
        for (j, f) in fps.iter().enumerate() {
            if i == j {
                continue;
            }
            // 30 fps sent; a busy two-core machine may decode a few late.
            let first = sees(p, f, 24);
            let v = &first["video"];
            assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(360)), "{first}");
            assert!(v["keyframes"].as_u64().unwrap() >= 1, "{first}");
            let latency = v["latency_ms"].as_u64().expect("the pattern's stamp was read");
            assert!(latency < 500, "capture to decoded: {first}");
            let later = sees(p, f, 24);
            let (a, b) = (v["frame"].as_u64().unwrap(), later["video"]["frame"].as_u64().unwrap());
            assert!(b >= a + 20, "the frame numbers advance: {first} then {later}");
            assert!(later["video"]["kbps"].as_u64().unwrap() > 50, "{later}");
        }
    }
    // The camera goes off: the others stop decoding alice; on again, they see her again.
    people[0].send(json!({"cmd": "camera", "on": false}));
    people[0].wait_for("camera off", |e| e["event"] == "camera" && e["on"] == false);
    people[2].wait_for("carol to hear alice's camera is off", |e| {
        e["event"] == "call_media" && e["peer"] == fps[0].as_str() && e["camera"] == false
    });
    people[1].wait_for("alice's video to stop", |e| {
        e["event"] == "media_stats" && e["peer"] == fps[0].as_str() && e["video"]["fps"] == 0
    });
    people[0].send(json!({"cmd": "camera", "on": true}));
    sees(&mut people[1], &fps[0], 24);
    // Bob mutes: the others see it.
    people[1].send(json!({"cmd": "mute", "on": true}));
    people[0].wait_for("bob muted", |e| {
        e["event"] == "call_media" && e["peer"] == fps[1].as_str() && e["muted"] == true
    });
}

/// Video over a path that drops 5 % of all datagrams: NACK/RTX and keyframes keep it decoded;
/// after two seconds of total loss it comes back.
#[test]
fn video_survives_loss_and_recovers_from_a_blackout() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = LossyNet::up("kith-video-loss", 5) else { return };
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start_in(Some(&net.name), &dir.path().join("hub"), "127.0.0.1:0", PW, &[]);
    let start = |name: &str, tone: &str, extra: &[&str]| {
        let mut args = video_args(&hub, tone);
        args.extend_from_slice(extra);
        Peer::start_in(&net.name, name, &dir.path().join(name), &args, PW)
    };
    let mut alice = start("alice", "tone:440", &[]);
    let mut bob = start("bob", "tone:660", &["--auto-answer"]);
    let fa = alice.fingerprint();
    let fb = bob.fingerprint();
    secure_with_all(&mut alice, &[&fb]);
    alice.wait_for("a direct link", |e| e["event"] == "link" && e["peer"] == fb.as_str());
    alice.send(json!({"cmd": "call", "room": "general"}));
    call_state(&mut bob, "joined");
    let first = sees(&mut bob, &fa, 20);
    for _ in 0..8 {
        sees(&mut bob, &fa, 15);
    }
    let lossy = sees(&mut bob, &fa, 15);
    let decoded = |e: &Value| e["video"]["frames_decoded"].as_u64().unwrap();
    assert!(decoded(&lossy) >= decoded(&first) + 150, "{first} then {lossy}");
    // Two seconds of nothing, then the 5 % again.
    net.set_loss(100);
    std::thread::sleep(std::time::Duration::from_secs(2));
    net.set_loss(5);
    let stalled = bob.wait_for("a report of the blackout", |e| {
        e["event"] == "media_stats"
            && e["peer"] == fa.as_str()
            && e["video"]["fps"].as_u64().is_some_and(|f| f < 10)
    });
    let back = sees(&mut bob, &fa, 20);
    assert!(decoded(&back) > decoded(&stalled), "{stalled} then {back}");
    let v = &back["video"];
    assert!(v["keyframe_requests"].as_u64().unwrap() >= 1, "the gap asked for a keyframe: {back}");
    assert!(v["keyframes"].as_u64().unwrap() >= 2, "and one came: {back}");
    assert!(!alice.log.iter().any(|e| e["event"] == "call_member" && e["state"] == "left"));
}

/// A path that carries little (an nftables policer in a test-made namespace): the bandwidth
/// estimate falls, the one encoder follows it and the ladder halves the size, so the video
/// keeps its frame rate; once the path is wide again the full size comes back.
#[test]
fn a_narrow_path_halves_the_video_and_a_wide_one_brings_it_back() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = LossyNet::up("kith-video-narrow", 0) else { return };
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start_in(Some(&net.name), &dir.path().join("hub"), "127.0.0.1:0", PW, &[]);
    let mut alice =
        Peer::start_in(&net.name, "alice", &dir.path().join("alice"), &video_args(&hub, "tone:440"), PW);
    let mut bob_args = video_args(&hub, "tone:660");
    bob_args.truncate(6);
    bob_args.extend(["--camera", "none", "--auto-answer"]);
    let mut bob = Peer::start_in(&net.name, "bob", &dir.path().join("bob"), &bob_args, PW);
    let (fa, fb) = (alice.fingerprint(), bob.fingerprint());
    secure_with_all(&mut alice, &[&fb]);
    alice.wait_for("a direct link", |e| e["event"] == "link" && e["peer"] == fb.as_str());
    alice.send(json!({"cmd": "call", "room": "general"}));
    call_state(&mut bob, "joined");
    let width = |e: &Value| e["video"]["width"].as_u64();
    let wide = sees(&mut bob, &fa, 20);
    assert_eq!(width(&wide), Some(640), "{wide}");
    // 40 KiB/s for everything: two voices and what is left for the video, ~200 kbit/s.
    net.set_rate(40);
    // Each report in turn until one shows `w` (the estimate and the ladder take their time).
    let at_width = |bob: &mut Peer, w: u64, within: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within);
        loop {
            let e = sees(bob, &fa, 1);
            if width(&e) == Some(w) {
                return e;
            }
            assert!(std::time::Instant::now() < deadline, "alice's video never {w} wide: {e}");
        }
    };
    let narrow = at_width(&mut bob, 320, 45);
    // The smaller picture keeps its frame rate on the narrow path.
    let later = sees(&mut bob, &fa, 15);
    assert_eq!(width(&later), Some(320), "{narrow} then {later}");
    assert!(later["video"]["kbps"].as_u64().unwrap() < 300, "{later}");
    net.set_loss(0);
    let back = at_width(&mut bob, 640, 60);
    assert!(back["video"]["fps"].as_u64().unwrap() >= 15, "{back}");
    eprintln!("wide {}\nnarrow {}\nback {}", wide["video"], later["video"], back["video"]);
}
