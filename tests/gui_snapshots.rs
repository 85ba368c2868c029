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
    let h = harness_in(dir.path());
    (dir, h)
}

fn harness_in(profile: &std::path::Path) -> Harness<'static, KithApp> {
    let profile = profile.to_path_buf();
    Harness::builder().with_size(egui::vec2(1040.0, 700.0)).wgpu().build_eframe(move |cc| {
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
    })
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

/// The chat stays at the newest message as messages arrive, stops following when the user
/// scrolls up to read (a new message does not pull the view away), and follows again once
/// they are back at the bottom.
#[test]
fn the_chat_follows_new_messages_until_the_user_scrolls_up() {
    let (_dir, mut h) = harness(Some(r#"{"display_name":"Alice","theme":"dark"}"#));
    let line = |i: u64| message(&format!("{i:016x}"), BOB, "bob", &format!("line {i}"), 10_000 - i, None);
    h.state_mut().show_fixture((0..200).map(line).collect(), "general");
    h.run_steps(4);
    // Only rows in view are laid out, so a row in the tree is a row on screen.
    let shown = |h: &Harness<'static, KithApp>, i: u64| h.query_by_label(&format!("line {i}")).is_some();
    assert!(shown(&h, 199) && !shown(&h, 0), "the view opens at the newest message");
    h.state_mut().show_fixture(vec![line(200)], "general");
    h.run_steps(4);
    assert!(shown(&h, 200), "a new message is followed");

    for _ in 0..10 {
        let first = (0..=200).find(|i| shown(&h, *i)).expect("rows in view");
        h.get_by_label(&format!("line {first}")).scroll_up();
        h.run_steps(2);
    }
    assert!(!shown(&h, 200), "scrolled up");
    let reading: Vec<u64> = (0..=200).filter(|i| shown(&h, *i)).collect();
    h.state_mut().show_fixture(vec![line(201)], "general");
    h.run_steps(4);
    assert!(!shown(&h, 201), "a new message pulled the view away from what the user reads");
    assert_eq!((0..=201).filter(|i| shown(&h, *i)).collect::<Vec<_>>(), reading);

    for _ in 0..40 {
        let Some(last) = (0..=201).rev().find(|i| shown(&h, *i)) else { break };
        h.get_by_label(&format!("line {last}")).scroll_down();
        h.run_steps(2);
    }
    assert!(shown(&h, 201), "back at the bottom");
    h.state_mut().show_fixture(vec![line(202)], "general");
    h.run_steps(4);
    assert!(shown(&h, 202), "following again at the bottom");
}

/// What the user changes in the Settings dialog survives a restart; a typed field is written
/// when it loses focus, not per keystroke (review D21).
#[test]
fn settings_changed_in_the_dialog_survive_a_restart() {
    let (dir, mut h) = harness(Some(r#"{"display_name":"Alice","theme":"dark"}"#));
    h.state_mut().show_fixture(conversation(), "general");
    h.run_steps(2);
    h.get_by_label("⚙").click();
    h.run_steps(2);
    let file = dir.path().join("settings.json");
    let before = std::fs::read_to_string(&file).unwrap();
    h.get_by_label("Default hub").click();
    h.run_steps(1);
    h.get_by_label("Default hub").type_text("hub.example.org:7070");
    h.run_steps(2);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "written while typing");
    h.get_by_label("Notify me of messages while Kith is in the background").click();
    h.run_steps(2);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("hub.example.org:7070") && saved.contains("\"notifications\": false"), "{saved}");
    drop(h);

    let mut again = harness_in(dir.path());
    again.run_steps(2);
    let s = again.state().settings();
    assert_eq!(s.default_hub, "hub.example.org:7070");
    assert!(!s.notifications);
    assert_eq!(s.display_name.as_deref(), Some("Alice"));
}

/// A test-pattern picture, as a decoder would publish it, into `key`'s tile.
fn publish_pattern(
    app: &KithApp,
    key: kith::core::TileKey,
    frame: u32,
) -> kith::media::video::tiles::TileWriter {
    use kith::media::video::frame::VideoSize;
    use kith::media::video::pattern::TestPattern;
    let size = VideoSize::new(640, 360).unwrap();
    let mut pattern = TestPattern::new(size, 30);
    let start = std::time::Instant::now();
    let mut writer = app.tiles().open(key);
    for i in 0..=frame {
        let at = start + std::time::Duration::from_millis(u64::from(i) * 34);
        if let Some(p) = pattern.capture(at, (NOW as u32).wrapping_add(i * 34))
            && i == frame
        {
            writer.publish(&p.picture()).unwrap();
        }
    }
    writer
}

/// A three-person call: our self-view and Bob's video from the test pattern, Carol without a
/// camera and muted (her initials), Bob speaking, the stats overlay on.
#[test]
fn call_grid_with_three_people() {
    use kith::core::{AudioStats, Fingerprint, TileKey, VideoStats};
    let (_dir, mut h) = harness(Some(r#"{"display_name":"Alice","theme":"dark"}"#));
    let mut evs = conversation();
    let members = vec![BOB.to_string(), CAROL.to_string()];
    evs.extend([
        ClientEvent::Call { room: "general".into(), state: "joined".into(), members },
        ClientEvent::Camera { on: true, available: true },
        ClientEvent::CallMedia { room: "general".into(), peer: BOB.into(), camera: true, muted: false },
        ClientEvent::CallMedia { room: "general".into(), peer: CAROL.into(), camera: false, muted: true },
        ClientEvent::MediaStats {
            peer: BOB.into(),
            rtt_ms: Some(3),
            audio: AudioStats {
                packets: 1500,
                jitter_buffer_ms: 40,
                target_ms: 40,
                level_db: -20,
                ..Default::default()
            },
            video: Some(VideoStats {
                width: 640,
                height: 360,
                fps: 30,
                frames_decoded: 900,
                keyframes: 1,
                kbps: 870,
                ..Default::default()
            }),
        },
    ]);
    h.state_mut().show_fixture(evs, "general");
    let _me = publish_pattern(h.state(), TileKey::Me, 12);
    let _bob = publish_pattern(h.state(), TileKey::Peer(Fingerprint::parse(BOB).unwrap()), 40);
    h.run_steps(3);
    h.get_by_label("📊 Stats").click();
    h.run_steps(3);
    assert_eq!(h.state().video_uploads(None).map(|(_, s)| s), Some([640, 360]));
    assert_eq!(h.state().video_uploads(Some(BOB)).map(|(n, _)| n), Some(1));
    assert!(h.query_by_label_contains("640×360 · 30 fps · 870 kbit/s").is_some(), "Bob's stats");
    for name in ["Alice (you)", "bob", "carol"] {
        assert!(h.query_by_label(&format!("Video of {name}")).is_some(), "{name}'s tile");
    }
    h.snapshot("call_grid");
}
