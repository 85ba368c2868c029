//! `kith doctor` against this machine, a real `kith hub` process and a real coturn.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{HubProc, KITH};

/// Runs `kith --profile PROFILE doctor ARGS`: its exit code and what it printed.
fn doctor(profile: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(KITH)
        .arg("--profile")
        .arg(profile)
        .arg("doctor")
        .args(args)
        .env_remove("KITH_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("run kith doctor");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The line about `part`, or a failure that shows the whole report.
fn line<'a>(report: &'a str, part: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(8..).is_some_and(|rest| rest.starts_with(&format!("{part}:"))))
        .unwrap_or_else(|| panic!("no line about {part}:\n{report}"))
}

#[test]
fn on_this_machine_every_part_gets_a_line_and_chat_works() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = doctor(dir.path(), &[]);
    assert_eq!(code, 0, "{report}");
    let first = report.lines().next().unwrap();
    assert!(first.starts_with("Kith ") && first.contains("commit "), "{report}");
    assert!(line(&report, "system").starts_with("ok"), "{report}");
    assert!(line(&report, "system").contains(std::env::consts::ARCH), "{report}");
    let profile = line(&report, "profile");
    assert!(profile.starts_with("ok") && profile.contains("(writable)"), "{report}");
    assert!(profile.contains(&dir.path().display().to_string()), "{report}");
    for part in ["downloads", "window libraries", "renderer", "sound", "cameras"] {
        let l = line(&report, part);
        assert!(l.starts_with("ok") || l.starts_with("warning"), "{part} failed chat:\n{report}");
    }
    // No camera here: said as a warning, in words.
    assert!(
        line(&report, "cameras").starts_with("warning") && report.contains("calls go on without your video")
    );
    assert!(report.trim_end().ends_with(&format!(
        "Chat works here; {} warning{}.",
        report.lines().filter(|l| l.starts_with("warning")).count(),
        if report.lines().filter(|l| l.starts_with("warning")).count() == 1 { "" } else { "s" }
    )));
}

#[test]
fn a_profile_that_cannot_be_written_fails_with_exit_1() {
    // Under a regular file: no directory can be made there, not even by root.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (code, report) = doctor(&file.join("profile"), &[]);
    assert_eq!(code, 1, "{report}");
    assert!(line(&report, "profile").starts_with("FAILED"), "{report}");
    assert!(report.contains("Chat cannot work here: 1 failure"), "{report}");
}

#[test]
fn a_hub_is_checked_by_signing_in_for_real() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProc::start(&dir.path().join("hub"), "open sesame", &[]);
    let me = dir.path().join("me");

    let (code, report) = doctor(&me, &["--hub", &hub.addr]);
    assert_eq!(code, 0, "{report}");
    assert!(line(&report, &format!("hub {}", hub.addr)).contains("pass --password"), "{report}");

    let (code, report) = doctor(&me, &["--hub", &hub.addr, "--password", "open sesame"]);
    assert_eq!(code, 0, "{report}");
    let sign_in = line(&report, &format!("hub {} sign-in", hub.addr));
    assert!(sign_in.starts_with("ok") && sign_in.contains("signed in to \"kith hub\""), "{report}");
    assert!(!report.contains("open sesame"), "the password is never printed:\n{report}");
    // The check used a scratch profile: nothing was pinned in the user's.
    assert!(!me.join("hubs.json").exists());

    let (code, report) = doctor(&me, &["--hub", &hub.addr, "--password", "wrong"]);
    assert_eq!(code, 1, "{report}");
    assert!(line(&report, &format!("hub {} sign-in", hub.addr)).starts_with("FAILED"), "{report}");
    assert!(report.contains("refused the password"), "{report}");

    drop(hub);
    let (code, report) = doctor(&me, &["--hub", "127.0.0.1:1"]);
    assert_eq!(code, 1, "{report}");
    assert!(line(&report, "hub 127.0.0.1:1").starts_with("FAILED"), "{report}");
    assert!(report.contains("cannot be reached"), "{report}");
}

/// coturn on loopback (no relay needed: only its STUN side is asked).
struct Coturn(Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stun_and_turn_servers_are_asked_and_a_silent_one_is_a_warning() {
    if !Path::new("/usr/bin/turnserver").exists() {
        assert!(std::env::var_os("CI").is_none(), "coturn is installed by .ci/run");
        common::say_skipped("tests/doctor.rs: the STUN check needs coturn (turnserver)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.path().join("coturn.log");
    let coturn = Command::new("turnserver")
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={port}"))
        .args(["--lt-cred-mech", "--realm=kith.test", "--user=u:p", "--no-tls", "--no-dtls", "--no-cli"])
        .args(["--simple-log", "--log-file=stdout"])
        .arg(format!("--userdb={}", dir.path().join("turndb").display()))
        .arg(format!("--pidfile={}", dir.path().join("turnserver.pid").display()))
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("start coturn");
    let _coturn = Coturn(coturn);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Relay ports initialization done") {
        assert!(
            Instant::now() < deadline,
            "coturn did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = format!("127.0.0.1:{port}");
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();
    let turn = format!("turn:u:p@{server}");
    let (code, report) =
        doctor(&dir.path().join("me"), &["--stun", &server, "--turn", &turn, "--stun", &silent]);
    assert_eq!(code, 0, "a silent STUN server does not stop chat:\n{report}");
    let stun = line(&report, &format!("STUN {server}"));
    assert!(stun.starts_with("ok") && stun.contains("sees this machine as 127.0.0.1"), "{report}");
    assert!(line(&report, &format!("TURN {server}")).starts_with("ok"), "{report}");
    let quiet = line(&report, &format!("STUN {silent}"));
    assert!(quiet.starts_with("warning") && quiet.contains("did not answer"), "{report}");
    assert!(!report.contains("u:p"), "TURN credentials are never printed:\n{report}");
}
