//! Pictures of the main screens, rendered with wgpu (lavapipe on a machine without a GPU) and
//! compared with the references in tests/snapshots/. Regenerate after an intended change with
//! `UPDATE_SNAPSHOTS=1 cargo test --test gui_snapshots` and look at the new images.

use std::sync::Arc;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kith::protocol::events::{ClientEvent, LinkKind};
use kith::ui::notify::Notify;
use kith::ui::{AppOptions, KithApp};

/// 2026-11-23 14:30 UTC.
const NOW: u64 = 1_795_444_200_000;
const BOB: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
const CAROL: &str = "ca201ca201ca201ca201ca201ca201ca";
const ME: &str = "a11ce0a11ce0a11ce0a11ce0a11ce0a1";

struct Silent;
impl Notify for Silent {
    fn notify(&self, _: &str, _: &str) {}
}

fn harness(settings: Option<&str>) -> (tempfile::TempDir, Harness<'static, KithApp>) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(s) = settings {
        std::fs::write(dir.path().join("settings.json"), s).unwrap();
    }
    let profile = dir.path().to_path_buf();
    let h = Harness::builder().with_size(egui::vec2(1040.0, 700.0)).wgpu().build_eframe(move |cc| {
        KithApp::new(
            &cc.egui_ctx,
            AppOptions {
                profile_dir: Some(profile.clone()),
                clock: Arc::new(|| NOW),
                utc_offset: chrono::FixedOffset::east_opt(0),
                notifier: Some(Box::new(Silent)),
                ..AppOptions::default()
            },
        )
    });
    (dir, h)
}

fn message(
    id: &str,
    from: &str,
    name: &str,
    text: &str,
    ago_s: u64,
    expires_in_s: Option<u64>,
) -> ClientEvent {
    ClientEvent::Message {
        id: id.into(),
        room: "general".into(),
        from: from.into(),
        name: name.into(),
        text: text.into(),
        sent_at: NOW - ago_s * 1000,
        expires_at: expires_in_s.map(|s| NOW + s * 1000),
        unconfirmed: false,
    }
}

fn secure(peer: &str, name: &str, verified: bool, identity_changed: bool) -> ClientEvent {
    ClientEvent::PeerSecure {
        peer: peer.into(),
        name: name.into(),
        safety_number: "43862 11804 79054 75619 81092 25856 57111 37509 03264 71664 58072 22017".into(),
        sas: "🐶 🦄 🔑 🌵 🤖 🎸 ☂️".into(),
        sas_words: "Dog Unicorn Key Cactus Robot Guitar Umbrella".into(),
        sas_digits: "7079 2594 3050 7494".into(),
        verified,
        identity_changed,
    }
}

fn conversation() -> Vec<ClientEvent> {
    let mut evs = vec![
        ClientEvent::Ready { name: "Alice".into(), fingerprint: ME.into(), hub: "192.168.1.20:7447".into() },
        ClientEvent::Joined { room: "general".into() },
        ClientEvent::Joined { room: "random".into() },
        ClientEvent::PeerJoined { room: "general".into(), peer: BOB.into(), name: "bob".into() },
        ClientEvent::PeerJoined { room: "general".into(), peer: CAROL.into(), name: "carol".into() },
        secure(BOB, "bob", true, false),
        secure(CAROL, "carol", false, false),
        ClientEvent::Link { peer: BOB.into(), kind: LinkKind::Direct, rtt_ms: Some(3) },
        ClientEvent::Link { peer: CAROL.into(), kind: LinkKind::Relay, rtt_ms: Some(41) },
        message("1", BOB, "bob", "Hey Alice! Did the hub come up on your side?", 600, None),
        message("2", BOB, "bob", "I put the photos from Saturday in the shared folder.", 590, None),
        message("3", CAROL, "carol", "The ones by the lake came out great 🌷", 400, None),
        message("4", BOB, "bob", "Door code, gone in five minutes: 4711", 60, Some(300)),
    ];
    evs.push(ClientEvent::Message {
        id: "r1".into(),
        room: "random".into(),
        from: CAROL.into(),
        name: "carol".into(),
        text: "unread elsewhere".into(),
        sent_at: NOW - 30_000,
        expires_at: None,
        unconfirmed: false,
    });
    evs
}

#[test]
fn onboarding_screen() {
    let (_dir, mut h) = harness(Some(r#"{"theme":"dark"}"#));
    h.run_steps(3);
    h.snapshot("onboarding");
}

#[test]
fn connect_screen() {
    let (_dir, mut h) = harness(Some(
        r#"{"display_name":"Alice","theme":"dark","recent_hubs":[{"addr":"192.168.1.20:7447","room":"general"}],"default_hub":"192.168.1.20:7447"}"#,
    ));
    h.run_steps(3);
    h.snapshot("connect");
}

#[test]
fn main_screen_with_conversation() {
    let (_dir, mut h) = harness(Some(r#"{"display_name":"Alice","theme":"dark"}"#));
    let mut evs = conversation();
    evs.extend([
        ClientEvent::FileSending {
            id: "00000000000000a1".into(),
            to: BOB.into(),
            name: "slides.pdf".into(),
            size: 48_200_000,
            path: "/home/alice/slides.pdf".into(),
        },
        ClientEvent::FileOffered { id: "00000000000000a1".into() },
        ClientEvent::FileProgress { id: "00000000000000a1".into(), bytes: 21_700_000, total: 48_200_000 },
        ClientEvent::FileOffer {
            id: "00000000000000b2".into(),
            from: CAROL.into(),
            name: "lake.jpg".into(),
            size: 4_400_000,
        },
    ]);
    h.state_mut().show_fixture(evs, "general");
    h.run_steps(4);
    h.snapshot("main");
}

#[test]
fn main_screen_light_theme_with_changed_identity() {
    let (_dir, mut h) = harness(Some(r#"{"display_name":"Alice","theme":"light"}"#));
    let mut evs = conversation();
    evs.push(ClientEvent::IdentityChanged {
        name: "carol".into(),
        old: "0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0l".into(),
        new: CAROL.into(),
    });
    h.state_mut().show_fixture(evs, "general");
    h.run_steps(4);
    h.snapshot("main_identity_changed_light");
}

#[test]
fn fingerprint_dialog() {
    let (_dir, mut h) = harness(Some(r#"{"display_name":"Alice","theme":"dark"}"#));
    h.state_mut().show_fixture(conversation(), "general");
    h.run_steps(3);
    h.get_by_role_and_label(egui::accesskit::Role::Button, "bob").click();
    h.run_steps(30);
    h.snapshot("fingerprint_dialog");
}
