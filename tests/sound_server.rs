//! The sound-card path (cpal, PulseAudio's own protocol) against a real PulseAudio server:
//! a tone played into a null sink reaches alice's Kith through a virtual source made of that
//! sink's monitor (her microphone), and bob's Kith plays what it decodes into a null sink of
//! its own (his speaker), whose monitor this test records and measures.
//!
//! Needs `pulseaudio`, `pactl`, `paplay` and `parecord` (`.ci/run` installs them); elsewhere
//! the test says so and passes, except under CI. It starts the server when none runs.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{HubProc, Peer};
use serde_json::{Value, json};

const PW: &str = "pw";

fn ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server's socket, starting the server if none answers; `None` (skipped) without one.
fn sound_server() -> Option<String> {
    let tools = ["pulseaudio", "pactl", "paplay", "parecord"];
    if let Some(missing) = tools.iter().find(|t| !ok("sh", &["-c", &format!("command -v {t}")])) {
        assert!(std::env::var_os("CI").is_none(), "{missing} is missing (installed by .ci/run)");
        common::say_skipped(&format!("tests/sound_server.rs: needs {missing}"));
        return None;
    }
    if !ok("pactl", &["info"]) {
        // As root (CI) PulseAudio warns that it is meant for a user, and runs.
        assert!(ok("pulseaudio", &["-D", "--exit-idle-time=-1"]), "pulseaudio did not start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok("pactl", &["info"]) {
            assert!(Instant::now() < deadline, "pulseaudio does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let info = output("pactl", &["info"]);
    let server = info.lines().find_map(|l| l.strip_prefix("Server String: "))?;
    Some(format!("unix:{}", server.trim()))
}

/// Modules this test loaded, unloaded when it ends.
struct Modules(Vec<String>);

impl Modules {
    fn load(&mut self, args: &[&str]) {
        let mut all = vec!["load-module"];
        all.extend_from_slice(args);
        self.0.push(output("pactl", &all).trim().to_string());
    }
}

impl Drop for Modules {
    fn drop(&mut self) {
        for id in self.0.iter().rev() {
            let _ = Command::new("pactl").args(["unload-module", id]).status();
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 48 kHz mono 16-bit WAV file of a sine at `hz`.
fn tone_wav(path: &Path, hz: f32, seconds: u32) {
    let n = 48_000 * seconds;
    let mut bytes = Vec::with_capacity(44 + 2 * n as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&48_000u32.to_le_bytes());
    bytes.extend_from_slice(&96_000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let s = (i as f32 * std::f32::consts::TAU * hz / 48_000.0).sin() * 0.3;
        bytes.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The samples of a 16-bit mono WAV file `parecord` wrote (its data chunk, wherever it is).
fn wav_samples(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    bytes[data..].chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0).collect()
}

#[test]
fn a_tone_into_alices_sound_card_comes_out_of_bobs() {
    let Some(server) = sound_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut modules = Modules(Vec::new());
    modules.load(&["module-null-sink", "sink_name=kith_test_mic_feed", "rate=48000", "channels=1"]);
    modules.load(&[
        "module-virtual-source",
        "source_name=kith_test_mic",
        "master=kith_test_mic_feed.monitor",
    ]);
    modules.load(&["module-null-sink", "sink_name=kith_test_speaker", "rate=48000", "channels=1"]);

    let wav = dir.path().join("tone.wav");
    tone_wav(&wav, 700.0, 60);
    let _playing = Killed(
        Command::new("paplay")
            .args(["--device=kith_test_mic_feed", wav.to_str().unwrap()])
            .env("PULSE_SERVER", &server)
            .spawn()
            .expect("paplay"),
    );

    let hub = HubProc::start(&dir.path().join("hub"), PW, &[]);
    // The kith processes find the server through PULSE_SERVER, as any PulseAudio client does.
    // SAFETY: this test binary has one test, so no other thread reads the environment.
    unsafe { std::env::set_var("PULSE_SERVER", &server) };
    let args = |mic: &'static str, speaker: &'static str| {
        ["--hub", hub.addr.as_str(), "--mic", mic, "--speaker", speaker].map(str::to_string)
    };
    let a = args("kith_test_mic", "none");
    let mut alice = Peer::start("alice", &dir.path().join("alice"), &a.each_ref().map(String::as_str), PW);
    let mut b = args("none", "kith_test_speaker").to_vec();
    b.push("--auto-answer".into());
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let mut bob = Peer::start("bob", &dir.path().join("bob"), &b, PW);

    // The devices the server has are the ones Kith lists, by the names --mic and --speaker take.
    alice.send(json!({"cmd": "devices"}));
    let devices = alice.wait_event("devices");
    let names = |key: &str| -> Vec<String> {
        devices[key].as_array().unwrap().iter().map(|d| d[0].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(devices["host"], "PulseAudio", "{devices}");
    assert!(names("inputs").contains(&"kith_test_mic".to_string()), "{devices}");
    assert!(names("outputs").contains(&"kith_test_speaker".to_string()), "{devices}");

    let (fa, fb) = (alice.fingerprint(), bob.fingerprint());
    alice.wait_until("a session with bob", |p| {
        p.log.iter().any(|e| e["event"] == "peer_secure" && e["peer"] == fb.as_str())
    });
    alice.send(json!({"cmd": "call", "room": "general"}));
    bob.wait_for("joined", |e| e["event"] == "call" && e["state"] == "joined");
    let heard = bob.wait_for("700 Hz from alice's microphone", |e: &Value| {
        e["event"] == "media_stats"
            && e["peer"] == fa.as_str()
            && e["audio"]["freq_hz"].as_u64().is_some_and(|f| f.abs_diff(700) <= 5)
    });
    assert!(heard["audio"]["level_db"].as_i64().unwrap() > -30, "{heard}");
    // No device problem was reported by either side.
    for p in [&alice, &bob] {
        assert!(!p.log.iter().any(|e| e["event"] == "error" && e["code"] == "media"), "{:#?}", p.log);
    }

    // And it comes out of bob's speaker: the sink's monitor, recorded for a few seconds
    // (parecord takes a while to start, and keeps less than it ran for).
    let rec = dir.path().join("speaker.wav");
    let mut recording = Command::new("parecord")
        .args(["--device=kith_test_speaker.monitor", "--rate=48000", "--channels=1", "--format=s16le"])
        .args(["--file-format=wav", rec.to_str().unwrap()])
        .spawn()
        .expect("parecord");
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill").args(["-INT", &recording.id().to_string()]).status();
    let _ = recording.wait();
    let samples = wav_samples(&rec);
    assert!(samples.len() > 9_600, "{} samples recorded", samples.len());
    let f = kith::media::signal::dominant_frequency(&samples, 48_000).expect("a tone on the speaker");
    assert!((f - 700.0).abs() < 5.0, "bob's speaker played {f} Hz");
    assert!(kith::media::signal::level_db(&samples) > -30.0);
    drop(alice);
    drop(bob);
}
