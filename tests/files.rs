//! What the README promises about files, between real `kith headless` processes over a direct
//! link on 127.0.0.1: every transfer ends, on both sides, with a file or a reason; a damaged
//! file never appears under its name; hostile names are saved as harmless ones.

mod common;

use std::path::{Path, PathBuf};

use common::{HubProc, Peer, random_file};
use serde_json::{Value, json};

const PW: &str = "pw";

struct Pair {
    _hub: HubProc,
    alice: Peer,
    bob: Peer,
    bob_fp: String,
    downloads: PathBuf,
}

/// Alice and bob with a direct link; bob saves into `downloads` and takes `bob_args` too.
fn pair(dir: &Path, bob_args: &[&str]) -> Pair {
    let hub = HubProc::start(&dir.join("hub"), PW, &[]);
    let downloads = dir.join("bob-downloads");
    let mut alice = Peer::join("alice", &dir.join("alice"), &hub.addr, PW);
    let alice_fp = alice.fingerprint();
    let mut args = vec!["--hub", &hub.addr, "--downloads", downloads.to_str().unwrap()];
    args.extend_from_slice(bob_args);
    let mut bob = Peer::start("bob", &dir.join("bob"), &args, PW);
    let bob_fp = bob.fingerprint();
    alice.wait_for("link", |e| e["event"] == "link" && e["peer"] == bob_fp.as_str() && e["kind"] == "direct");
    bob.wait_for("link", |e| e["event"] == "link" && e["peer"] == alice_fp.as_str() && e["kind"] == "direct");
    Pair { _hub: hub, alice, bob, bob_fp, downloads }
}

impl Pair {
    fn offer(&mut self, path: &Path) -> (String, Value) {
        self.alice.send(json!({"cmd": "send_file", "peer": self.bob_fp, "path": path.to_str().unwrap()}));
        let sending = self.alice.wait_event("file_sending");
        let offer = self.bob.wait_event("file_offer");
        (sending["id"].as_str().unwrap().to_string(), offer)
    }

    /// What is in bob's downloads folder, hidden part files included.
    fn downloaded(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.downloads) else { return Vec::new() };
        let mut names: Vec<String> =
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

fn failed(p: &mut Peer, id: &Value) -> String {
    let f = p.wait_for("file_failed", |e| e["event"] == "file_failed" && e["id"] == *id);
    f["reason"].as_str().unwrap().to_string()
}

#[test]
fn a_declined_offer_ends_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pair(dir.path(), &[]);
    let source = dir.path().join("holiday.jpg");
    random_file(&source, 10_000);
    let (sent_id, offer) = p.offer(&source);
    p.bob.send(json!({"cmd": "decline_file", "id": offer["id"]}));
    let reason = failed(&mut p.alice, &json!(sent_id));
    assert!(reason.contains("declined"), "{reason}");
    assert!(p.downloaded().is_empty(), "{:?}", p.downloaded());
}

#[test]
fn a_file_over_the_receivers_limit_is_declined_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pair(dir.path(), &["--accept-files", "--max-file-size", "4096"]);
    let source = dir.path().join("big.bin");
    random_file(&source, 5000);
    p.alice.send(json!({"cmd": "send_file", "peer": p.bob_fp, "path": source.to_str().unwrap()}));
    let sending = p.alice.wait_event("file_sending");
    let reason = failed(&mut p.alice, &sending["id"]);
    assert!(reason.contains("up to 4096 bytes"), "{reason}");
    assert!(p.downloaded().is_empty(), "{:?}", p.downloaded());
}

/// Either side stops a running transfer: both sides say so, and no part file is left.
#[test]
fn a_transfer_cancelled_from_either_side_ends_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pair(dir.path(), &[]);
    let source = dir.path().join("movie.bin");
    random_file(&source, 256 << 20);
    for canceller in ["sender", "receiver"] {
        let (sent_id, offer) = p.offer(&source);
        p.bob.send(json!({"cmd": "accept_file", "id": offer["id"]}));
        p.bob.wait_for("progress", |e| e["event"] == "file_progress" && e["id"] == offer["id"]);
        if canceller == "sender" {
            p.alice.send(json!({"cmd": "cancel_file", "id": sent_id}));
        } else {
            p.bob.send(json!({"cmd": "cancel_file", "id": offer["id"]}));
        }
        failed(&mut p.alice, &json!(sent_id));
        failed(&mut p.bob, &offer["id"]);
        let deadline = std::time::Instant::now() + common::WAIT;
        while !p.downloaded().is_empty() {
            assert!(std::time::Instant::now() < deadline, "{canceller}: left {:?}", p.downloaded());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    // The link still works for the next one.
    let small = dir.path().join("small.txt");
    let sha = random_file(&small, 1000);
    let (_, offer) = p.offer(&small);
    p.bob.send(json!({"cmd": "accept_file", "id": offer["id"]}));
    let got = p.bob.wait_event("file_received");
    assert_eq!(got["sha256"], sha.as_str());
}

/// The sender's file changes after it was hashed and offered: what arrives does not match
/// the hash, and the receiver never shows it under its name.
#[test]
fn a_damaged_file_never_appears_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pair(dir.path(), &[]);
    let source = dir.path().join("contract.pdf");
    random_file(&source, 1 << 20);
    let (sent_id, offer) = p.offer(&source);
    // The same size, other bytes, in the same file the sender holds open.
    let mut bytes = std::fs::read(&source).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&source, &bytes).unwrap();
    p.bob.send(json!({"cmd": "accept_file", "id": offer["id"]}));
    let reason = failed(&mut p.bob, &offer["id"]);
    assert!(reason.contains("SHA-256"), "{reason}");
    failed(&mut p.alice, &json!(sent_id));
    assert!(p.downloaded().is_empty(), "{:?}", p.downloaded());
}

#[test]
fn long_and_hostile_names_arrive_as_harmless_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pair(dir.path(), &["--accept-files"]);
    let long = format!("{}.txt", "n".repeat(251));
    assert_eq!(long.len(), 255);
    let cases = [
        (long.as_str(), long.as_str()),
        ("photo\u{202E}gpj.exe", "photogpj.exe"),
        ("CON.txt", "_CON.txt"),
        ("notes. . .", "notes"),
        (".bashrc", "bashrc"),
    ];
    for (offered, saved) in cases {
        let source = dir.path().join("out").join(offered);
        std::fs::create_dir_all(source.parent().unwrap()).unwrap();
        let sha = random_file(&source, 3000);
        p.alice.send(json!({"cmd": "send_file", "peer": p.bob_fp, "path": source.to_str().unwrap()}));
        let got = p.bob.wait_event("file_received");
        assert_eq!(got["sha256"], sha.as_str());
        assert_eq!(Path::new(got["path"].as_str().unwrap()), p.downloads.join(saved), "{offered:?}");
    }
    // The same name again gets a new one beside it; nothing is overwritten.
    let source = dir.path().join("out").join(".bashrc");
    random_file(&source, 10);
    p.alice.send(json!({"cmd": "send_file", "peer": p.bob_fp, "path": source.to_str().unwrap()}));
    let got = p.bob.wait_event("file_received");
    assert_eq!(Path::new(got["path"].as_str().unwrap()), p.downloads.join("bashrc (1)"));
}
