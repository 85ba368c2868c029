//! Like str0m's `tests/pii.rs`: with every log level on, no message text, password or key
//! material reaches the logs.

mod common;

use common::{HubProc, Peer};
use serde_json::json;

#[test]
fn logs_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pw-Zq81-never-logged";
    let hub = HubProc::start(&dir.path().join("hub"), password, &[]);
    let (la, lb) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let target = ["--hub", hub.addr.as_str()];
    let mut a = Peer::start_logged("alice", &dir.path().join("a"), &target, password, &la);
    let fa = a.fingerprint();
    let mut b = Peer::start_logged("bob", &dir.path().join("b"), &target, password, &lb);
    b.wait_for("peer_secure", |e| e["event"] == "peer_secure" && e["peer"] == fa.as_str());
    let text = "the-secret-plan-7731";
    a.send(json!({"cmd": "send", "room": "general", "text": text}));
    assert_eq!(b.wait_event("message")["text"], text);
    a.wait_event("delivered");
    assert_eq!(a.quit(), 0);
    assert_eq!(b.quit(), 0);

    let logs = std::fs::read_to_string(&la).unwrap() + &std::fs::read_to_string(&lb).unwrap();
    assert!(logs.lines().count() > 5, "trace logging produced too little to be a meaningful check:\n{logs}");
    let mut secrets = vec![text.to_string(), password.to_string()];
    for who in ["a", "b"] {
        let key_file = std::fs::read_to_string(dir.path().join(who).join("identity.key")).unwrap();
        secrets.push(key_file.lines().nth(1).unwrap().to_string());
    }
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs");
    }
}
