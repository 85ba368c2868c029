#![no_main]
//! `kith headless` command lines and the text identifiers users paste.
use kith::protocol::events::ClientCommand;
use kith::protocol::identity::Fingerprint;
use kith::protocol::wire::MessageId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cmd) = serde_json::from_str::<ClientCommand>(s) {
            let again = serde_json::to_string(&cmd).unwrap();
            assert_eq!(serde_json::from_str::<ClientCommand>(&again).unwrap(), cmd);
        }
        let _ = Fingerprint::parse(s);
        let _ = MessageId::parse(s);
    }
});
