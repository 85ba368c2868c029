//! Two `kith headless` peers behind separate NATs, in network namespaces this test builds
//! (`tests/nat/topology.sh`: veth pairs, a bridge for "the internet", iptables MASQUERADE on
//! each home router), with a real coturn as STUN/TURN server and the hub on the internet side.
//!
//! Needs root, iproute2, iptables, conntrack and coturn (`.ci/run` installs them). Where they are missing
//! the tests say so and pass, except under CI (`CI` set), where that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{HubProc, Peer, random_file};
use serde_json::json;

const PW: &str = "correct horse battery staple";
const SERVER: &str = "203.0.113.1";
const TURN_USER: &str = "kith";
const TURN_PASS: &str = "relay-secret";

fn topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nat/topology.sh")
}

/// Whether this machine can build the namespaces; under CI it must.
fn can_run() -> bool {
    let have = |cmd: &str, arg: &str| Command::new(cmd).arg(arg).output().is_ok_and(|o| o.status.success());
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let missing: Vec<&str> = [
        ("root", root),
        ("ip", have("ip", "-V")),
        ("iptables", have("iptables", "--version")),
        ("conntrack", have("conntrack", "--version")),
        ("turnserver (coturn)", Path::new("/usr/bin/turnserver").exists()),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "NAT tests need {missing:?} (installed by .ci/run)");
    common::say_skipped(&format!("tests/nat.rs: the NAT tests need {}", missing.join(", ")));
    false
}

/// The namespaces and coturn of one test; all removed on drop.
struct Internet {
    prefix: String,
    coturn: Option<Child>,
}

impl Internet {
    /// `prefix` keeps concurrent tests' namespaces apart.
    fn up(prefix: &str, dir: &Path) -> Self {
        let _ = Command::new("sh").arg(topology()).args(["down", prefix]).status();
        let net = Self { prefix: prefix.to_string(), coturn: None };
        net.script("up");
        let mut net = net;
        let log = std::fs::File::create(dir.join("coturn.log")).unwrap();
        let coturn = Command::new("ip")
            .args(["netns", "exec", &net.ns("pub"), "turnserver", "-n"])
            .arg(format!("--listening-ip={SERVER}"))
            .arg(format!("--relay-ip={SERVER}"))
            .args(["--listening-port=3478", "--lt-cred-mech", "--realm=kith.test", "--fingerprint"])
            .arg(format!("--user={TURN_USER}:{TURN_PASS}"))
            .args(["--no-tls", "--no-dtls", "--no-cli", "--simple-log", "--log-file=stdout"])
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start coturn");
        net.coturn = Some(coturn);
        // coturn has no readiness signal; its log says when its relay ports are ready (the
        // clients retransmit anyway, this only makes a broken coturn fail here, clearly).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(dir.join("coturn.log"))
            .unwrap_or_default()
            .contains("Relay ports initialization done")
        {
            assert!(
                Instant::now() < deadline,
                "coturn did not start; see {}",
                dir.join("coturn.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        net
    }

    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn script(&self, cmd: &str) {
        let status = Command::new("sh").arg(topology()).args([cmd, &self.prefix]).status().unwrap();
        assert!(status.success(), "topology.sh {cmd} failed");
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        if let Some(c) = &mut self.coturn {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("sh").arg(topology()).args(["down", &self.prefix]).status();
    }
}

/// Waits until each peer reports a link of `kind` to the other; returns bob's fingerprint.
fn linked(a: &mut Peer, b: &mut Peer, kind: &str) -> String {
    let (fa, fb) = (a.fingerprint(), b.fingerprint());
    for (p, other) in [(a, &fb), (b, &fa)] {
        p.wait_for("link", |e| e["event"] == "link" && e["peer"] == other.as_str() && e["kind"] == kind);
    }
    fb
}

/// The link never fell back: the hub carried only signalling.
fn stayed_direct(p: &Peer) {
    assert!(!p.log.iter().any(|e| e["event"] == "link" && e["kind"] != "direct"), "{:#?}", p.log);
}

/// Where `peers(.., logged: true)` writes `name`'s log.
fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// Alice behind NAT A and bob behind NAT B, both on the hub in the internet namespace, with
/// `servers` as their STUN/TURN flags; bob takes files into `downloads`. With `logged`, their
/// logs (kith=info) go to `alice.log` and `bob.log` in `dir`.
fn peers(net: &Internet, dir: &Path, hub: &str, servers: &[&str], logged: bool) -> (Peer, Peer) {
    let dl = dir.join("bob-downloads");
    let mut a_args = vec!["--hub", hub];
    a_args.extend_from_slice(servers);
    let mut b_args = a_args.clone();
    b_args.extend_from_slice(&["--downloads", dl.to_str().unwrap(), "--accept-files"]);
    let start = |name: &str, args: &[&str]| {
        let (ns, profile, log) = (net.ns(&name[..1]), dir.join(name), log_path(dir, name));
        if logged {
            Peer::start_in_logged(&ns, name, &profile, args, PW, (&log, "kith=info"))
        } else {
            Peer::start_in(&ns, name, &profile, args, PW)
        }
    };
    (start("alice", &a_args), start("bob", &b_args))
}

/// Chat both ways and a file from alice to bob over whatever link is up.
fn chat_and_file(a: &mut Peer, b: &mut Peer, fb: &str, dir: &Path, size: usize) {
    a.send(json!({"cmd": "send", "room": "general", "text": "through the NATs"}));
    assert_eq!(b.wait_event("message")["text"], "through the NATs");
    b.send(json!({"cmd": "send", "room": "general", "text": "and back"}));
    assert_eq!(a.wait_event("message")["text"], "and back");
    let source = dir.join("photo.bin");
    let sha = random_file(&source, size);
    let started = Instant::now();
    a.send(json!({"cmd": "send_file", "peer": fb, "path": source.to_str().unwrap()}));
    let got = b.wait_event("file_received");
    eprintln!("{} MiB in {:.2} s", size >> 20, started.elapsed().as_secs_f64());
    assert_eq!(got["sha256"], sha.as_str());
    assert_eq!(got["size"], size as u64);
}

/// The hub, on the internet side.
fn hub(net: &Internet, dir: &Path) -> HubProc {
    HubProc::start_in(Some(&net.ns("pub")), &dir.join("hub"), &format!("{SERVER}:0"), PW, &[])
}

#[test]
fn peers_behind_two_nats_connect_directly_through_their_stun_mapped_addresses() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Internet::up("ktsx", dir.path());
    let hub = hub(&net, dir.path());
    let stun = format!("{SERVER}:3478");
    let (mut a, mut b) = peers(&net, dir.path(), &hub.addr, &["--stun", &stun], false);
    // Host candidates (192.168.x) cannot reach across; only the NATs' mapped addresses can.
    let fb = linked(&mut a, &mut b, "direct");
    chat_and_file(&mut a, &mut b, &fb, dir.path(), 8 << 20);
    stayed_direct(&a);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

#[test]
fn with_direct_udp_blocked_the_link_goes_through_the_turn_relay() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Internet::up("kttr", dir.path());
    net.script("block-udp");
    let hub = hub(&net, dir.path());
    let stun = format!("{SERVER}:3478");
    let turn = format!("turn:{TURN_USER}:{TURN_PASS}@{SERVER}:3478");
    let (mut a, mut b) = peers(&net, dir.path(), &hub.addr, &["--stun", &stun, "--turn", &turn], false);
    let fb = linked(&mut a, &mut b, "relay");
    chat_and_file(&mut a, &mut b, &fb, dir.path(), 4 << 20);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

#[test]
fn a_turn_server_that_refuses_the_password_is_reported_and_chat_stays_on_the_hub() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Internet::up("ktbp", dir.path());
    net.script("block-udp");
    let hub = hub(&net, dir.path());
    let turn = format!("turn:{TURN_USER}:wrong@{SERVER}:3478");
    let (mut a, mut b) = peers(&net, dir.path(), &hub.addr, &["--turn", &turn], false);
    let fb = b.fingerprint();
    a.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fb.as_str());
    // The server answers a wrong password with a bare 401; the allocation is given up in
    // seconds and said so, once, without ending anything.
    let err = a.wait_for("ice_server error", |e| e["event"] == "error" && e["code"] == "ice_server");
    let text = err["message"].as_str().unwrap();
    assert!(text.contains("TURN server") && text.contains("wrong user or password"), "{err}");
    assert_ne!(err["fatal"], true, "{err}");
    a.send(json!({"cmd": "send", "room": "general", "text": "via the hub"}));
    assert_eq!(b.wait_event("message")["text"], "via the hub");
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

/// Mid-transfer, both routers start sending from new public addresses and forget their old
/// mappings (`topology.sh` `change`: `renumber-udp` or `renumber`), so every datagram on the
/// old path is dropped. Both sides move, so whichever made the offer trickles a new candidate
/// mid-restart. The link must find the new path itself, never falling back to the hub.
fn a_transfer_survives(prefix: &str, change: &str, hub_breaks_too: bool) {
    let dir = tempfile::tempdir().unwrap();
    let net = Internet::up(prefix, dir.path());
    let hub = hub(&net, dir.path());
    let stun = format!("{SERVER}:3478");
    let (mut a, mut b) = peers(&net, dir.path(), &hub.addr, &["--stun", &stun], true);
    let fb = linked(&mut a, &mut b, "direct");
    let source = dir.path().join("big.bin");
    let size = 48usize << 20;
    let sha = random_file(&source, size);
    a.send(json!({"cmd": "send_file", "peer": fb, "path": source.to_str().unwrap()}));
    let first =
        b.wait_for("file_progress", |e| e["event"] == "file_progress" && e["bytes"].as_u64() > Some(0));
    net.script(change);
    assert!(first["bytes"].as_u64() < Some(size as u64), "{first}");
    if hub_breaks_too {
        // Something for the hub right away (joining a room), so alice finds her TCP
        // connection dead now rather than at the next keepalive.
        a.send(json!({"cmd": "join", "room": "elsewhere"}));
        a.wait_event("disconnected");
        a.wait_event("reconnected");
    }
    let got = b.wait_event("file_received");
    assert_eq!(got["sha256"], sha.as_str());
    stayed_direct(&a);
    stayed_direct(&b);
    a.send(json!({"cmd": "send", "room": "general", "text": "after the change"}));
    assert_eq!(b.wait_event("message")["text"], "after the change");
    for (name, public) in [("alice", "203.0.113.12:"), ("bob", "203.0.113.13:")] {
        let log = std::fs::read_to_string(log_path(dir.path(), name)).unwrap();
        assert!(log.contains("ICE restart:") && log.contains("ICE restart found a path"), "{log}");
        assert!(log.contains(public), "no new server-reflexive address: {log}");
    }
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
}

/// The hub's TCP carries on; only UDP is renumbered.
#[test]
fn when_a_nat_renumbers_the_link_restarts_ice_and_the_transfer_carries_on() {
    if can_run() {
        a_transfer_survives("ktrn", "renumber-udp", false);
    }
}

/// A laptop that moves to another network loses every flow at once: the link's UDP and the
/// hub's TCP. The link restarts ICE while the hub connection is made again; what the hub was
/// relaying when it broke (a restart offer, a trickled candidate) is sent again.
#[test]
fn when_the_network_changes_under_the_link_and_the_hub_connection_the_transfer_carries_on() {
    if can_run() {
        a_transfer_survives("ktmv", "renumber", true);
    }
}

#[test]
fn on_a_dual_stack_internet_peers_link_directly_over_ipv6_without_any_server() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Internet::up("ktv6", dir.path());
    // Each home also gets a routed IPv6 /64 behind a stateful firewall. There is no STUN or
    // TURN server: over IPv4 the peers only know their private addresses and could not
    // leave the hub; their global IPv6 host candidates punch through both firewalls.
    net.script("dual-stack");
    let hub = hub(&net, dir.path());
    let (mut a, mut b) = peers(&net, dir.path(), &hub.addr, &[], true);
    let fb = linked(&mut a, &mut b, "direct");
    chat_and_file(&mut a, &mut b, &fb, dir.path(), 8 << 20);
    stayed_direct(&a);
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
    // The path is the two global addresses (the log names the pair in use when it opened).
    for (name, remote) in [("alice", "2001:db8:b::2"), ("bob", "2001:db8:a::2")] {
        let log = std::fs::read_to_string(log_path(dir.path(), name)).unwrap();
        let open = log.lines().find(|l| l.contains("direct link open")).unwrap_or_default();
        assert!(open.contains(&format!("[{remote}]:")), "{name} did not open over IPv6: {log}");
    }
}
