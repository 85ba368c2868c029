//! Spawns real `kith hub` and `kith headless` processes and reads their JSON lines.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod lossy_net;

pub const KITH: &str = env!("CARGO_BIN_EXE_kith");
/// How long to wait for an event before failing. Tests finish as soon as events arrive.
pub const WAIT: Duration = Duration::from_secs(30);

/// Says that a suite skips, once per test binary, on a line a `cargo test` run shows: written
/// to the process's stderr directly, which the test harness does not capture (it only takes
/// `eprintln!`).
pub fn say_skipped(line: &str) {
    use std::io::Write as _;
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(std::io::stderr().lock(), "SKIPPED {line}");
    });
}

pub struct HubProc {
    pub child: Child,
    pub addr: String,
    pub fingerprint: String,
    _lines: mpsc::Receiver<Value>,
}

/// `kith`, run inside network namespace `netns` when given (`ip netns exec` execs it, so the
/// child is kith itself).
fn kith_command(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, KITH]);
            c
        }
        None => Command::new(KITH),
    }
}

impl HubProc {
    pub fn start(profile: &std::path::Path, password: &str, extra: &[&str]) -> Self {
        Self::start_on(profile, "127.0.0.1:0", password, extra)
    }

    pub fn start_on(profile: &std::path::Path, listen: &str, password: &str, extra: &[&str]) -> Self {
        Self::start_in(None, profile, listen, password, extra)
    }

    /// Like `start`, with every log line (trace and up) written to `log`.
    pub fn start_logged(profile: &std::path::Path, password: &str, log: &std::path::Path) -> Self {
        Self::spawn(None, profile, "127.0.0.1:0", password, &[], Some(log))
    }

    /// Like `start_on`, inside network namespace `netns` when given.
    pub fn start_in(
        netns: Option<&str>,
        profile: &std::path::Path,
        listen: &str,
        password: &str,
        extra: &[&str],
    ) -> Self {
        Self::spawn(netns, profile, listen, password, extra, None)
    }

    fn spawn(
        netns: Option<&str>,
        profile: &std::path::Path,
        listen: &str,
        password: &str,
        extra: &[&str],
        log: Option<&std::path::Path>,
    ) -> Self {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = kith_command(netns)
            .env("RUST_LOG", if log.is_some() { "trace" } else { "warn" })
            .arg("--profile")
            .arg(profile)
            .args(["hub", "--listen", listen, "--password", password])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn kith hub");
        let lines = read_json_lines(child.stdout.take().unwrap());
        let first = lines.recv_timeout(WAIT).expect("hub printed nothing");
        assert_eq!(first["event"], "listening", "{first}");
        Self {
            child,
            addr: first["addr"].as_str().unwrap().to_string(),
            fingerprint: first["fingerprint"].as_str().unwrap().to_string(),
            _lines: lines,
        }
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Peer {
    pub name: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    /// Everything seen so far, in order.
    pub log: Vec<Value>,
    cursor: usize,
}

impl Peer {
    pub fn start(name: &str, profile: &std::path::Path, target: &[&str], password: &str) -> Self {
        Self::spawn(None, name, profile, target, password, None)
    }

    /// Like `start`, inside network namespace `netns`.
    pub fn start_in(
        netns: &str,
        name: &str,
        profile: &std::path::Path,
        target: &[&str],
        password: &str,
    ) -> Self {
        Self::spawn(Some(netns), name, profile, target, password, None)
    }

    /// Like `start`, with every log line (`RUST_LOG=trace`) written to `log`.
    pub fn start_logged(
        name: &str,
        profile: &std::path::Path,
        target: &[&str],
        password: &str,
        log: &std::path::Path,
    ) -> Self {
        Self::spawn(None, name, profile, target, password, Some((log, "trace")))
    }

    /// Like `start_in`, with log lines at `level` and above written to `log`.
    pub fn start_in_logged(
        netns: &str,
        name: &str,
        profile: &std::path::Path,
        target: &[&str],
        password: &str,
        log: (&std::path::Path, &str),
    ) -> Self {
        Self::spawn(Some(netns), name, profile, target, password, Some(log))
    }

    fn spawn(
        netns: Option<&str>,
        name: &str,
        profile: &std::path::Path,
        target: &[&str],
        password: &str,
        log: Option<(&std::path::Path, &str)>,
    ) -> Self {
        let stderr = match log {
            Some((path, _)) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = kith_command(netns)
            .env("RUST_LOG", log.map_or("warn", |(_, level)| level))
            .arg("--profile")
            .arg(profile)
            .args(["headless", "--name", name, "--password", password])
            .args(target)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn kith headless");
        let events = read_json_lines(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        Self { name: name.to_string(), child, stdin, events, log: Vec::new(), cursor: 0 }
    }

    pub fn join(name: &str, profile: &std::path::Path, hub: &str, password: &str) -> Self {
        Self::start(name, profile, &["--hub", hub], password)
    }

    pub fn send(&mut self, cmd: Value) {
        self.send_raw(&cmd.to_string());
    }

    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to headless");
        stdin.flush().unwrap();
    }

    /// Waits for the next event (after the last one matched) satisfying `pred`.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            while self.cursor < self.log.len() {
                let ev = &self.log[self.cursor];
                self.cursor += 1;
                if pred(ev) {
                    return ev.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => self.log.push(ev),
                Err(_) => panic!("{}: no {what} within {WAIT:?}; saw {:#?}", self.name, self.log),
            }
        }
    }

    /// Records events until `done` holds for the whole log (for events whose order among
    /// others does not matter).
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&Peer) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) && Instant::now() < deadline {
            self.drain(Duration::from_millis(100));
        }
        assert!(done(self), "{}: no {what} within {WAIT:?}; saw {:#?}", self.name, self.log);
    }

    /// Records whatever arrives within `dur`.
    pub fn drain(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        while let Ok(ev) = self.events.recv_timeout(end.saturating_duration_since(Instant::now())) {
            self.log.push(ev);
        }
    }

    pub fn wait_event(&mut self, event: &str) -> Value {
        self.wait_for(event, |e| e["event"] == event)
    }

    /// Collects events until `n` satisfy `pred`.
    pub fn collect(&mut self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        (0..n).map(|_| self.wait_for("collected event", &pred)).collect()
    }

    /// Waits for the process to exit and returns its status code; drains remaining events.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(ev) = self.events.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(ev);
                }
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                panic!("{} did not exit; saw {:#?}", self.name, self.log);
            }
            while let Ok(ev) = self.events.try_recv() {
                self.log.push(ev);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn quit(&mut self) -> i32 {
        self.send(serde_json::json!({"cmd": "quit"}));
        self.wait_exit()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn fingerprint(&mut self) -> String {
        if let Some(ready) = self.log.iter().find(|e| e["event"] == "ready") {
            return ready["fingerprint"].as_str().unwrap().to_string();
        }
        let ready = self.wait_for("ready", |e| e["event"] == "ready");
        ready["fingerprint"].as_str().unwrap().to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_json_lines(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts two peers on `hub`, waits until they hold a secure session with each other.
pub fn secure_pair(dir: &std::path::Path, hub: &str, password: &str) -> (Peer, Peer) {
    secure_pair_with(dir, hub, password, &[])
}

/// [`secure_pair`] with more arguments for both (`--no-direct`, say).
pub fn secure_pair_with(dir: &std::path::Path, hub: &str, password: &str, extra: &[&str]) -> (Peer, Peer) {
    let args: Vec<&str> = ["--hub", hub].into_iter().chain(extra.iter().copied()).collect();
    let mut a = Peer::start("alice", &dir.join("alice"), &args, password);
    let fa = a.fingerprint();
    let mut b = Peer::start("bob", &dir.join("bob"), &args, password);
    let fb = b.fingerprint();
    let sa = a.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fb.as_str());
    let sb = b.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fa.as_str());
    assert_eq!(sa["safety_number"], sb["safety_number"]);
    assert_eq!(sa["sas"], sb["sas"]);
    assert_eq!(sa["sas_digits"], sb["sas_digits"]);
    (a, b)
}

/// Writes `size` bytes that do not compress or repeat (a ChaCha stream).
pub fn random_file(path: &std::path::Path, size: usize) -> String {
    use rand_core::{RngCore, SeedableRng};
    use sha2::Digest;
    use std::io::Write;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(size as u64);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
    hex::encode(hasher.finalize())
}
