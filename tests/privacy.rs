//! Like str0m's `tests/pii.rs`: with every log level on, in the hub's log and both clients',
//! no message text, file name, password (hub or TURN) or key material appears.

mod common;

use common::{HubProc, Peer};
use serde_json::json;

#[test]
fn logs_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pw-Zq81-never-logged";
    let lh = dir.path().join("hub.log");
    let hub = HubProc::start_logged(&dir.path().join("hub"), password, &lh);
    let (la, lb) = (dir.path().join("a.log"), dir.path().join("b.log"));
    // A TURN server nobody answers at: its password is used (to sign requests), never shown.
    let turn_password = "turn-pw-Hq42-never-logged";
    let turn = format!("turn:kith:{turn_password}@127.0.0.1:9");
    let downloads = dir.path().join("downloads");
    let target = ["--hub", hub.addr.as_str(), "--turn", turn.as_str()];
    let mut a = Peer::start_logged("alice", &dir.path().join("a"), &target, password, &la);
    let fa = a.fingerprint();
    let b_target = [&target[..], &["--accept-files", "--downloads", downloads.to_str().unwrap()]].concat();
    let mut b = Peer::start_logged("bob", &dir.path().join("b"), &b_target, password, &lb);
    let fb = b.fingerprint();
    b.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fa.as_str());
    let text = "the-secret-plan-7731";
    a.send(json!({"cmd": "send", "room": "general", "text": text}));
    assert_eq!(b.wait_event("message")["text"], text);
    a.wait_event("delivered");
    let file_name = "holiday-photos-5519.jpg";
    let file = dir.path().join(file_name);
    common::random_file(&file, 50_000);
    a.wait_for("link", |e| e["event"] == "link" && e["peer"] == fb.as_str() && e["kind"] == "direct");
    a.send(json!({"cmd": "send_file", "peer": fb, "path": file.to_str().unwrap()}));
    b.wait_event("file_received");
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);
    drop(hub);

    let hub_log = std::fs::read_to_string(&lh).unwrap();
    assert!(hub_log.lines().count() > 5, "the hub's trace log is too short to mean anything:\n{hub_log}");
    let logs = std::fs::read_to_string(&la).unwrap() + &std::fs::read_to_string(&lb).unwrap() + &hub_log;
    assert!(logs.lines().count() > 5, "trace logging produced too little to be a meaningful check:\n{logs}");
    let mut secrets = vec![
        text.to_string(),
        password.to_string(),
        turn_password.to_string(),
        file_name.to_string(),
        "holiday-photos".to_string(),
    ];
    for key in ["a/identity.key", "b/identity.key", "hub/hub.key"] {
        let key_file = std::fs::read_to_string(dir.path().join(key)).unwrap();
        secrets.push(key_file.lines().nth(1).unwrap().to_string());
    }
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs: {s}");
    }
}
