//! The desktop app driven through its widgets (egui_kittest over AccessKit), with real cores:
//! one app hosts the hub in-process, others join it over loopback TCP.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use kith::ui::notify::Notify;
use kith::ui::{AppOptions, KithApp};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse";

/// Notifications the app would have shown.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, String)>>>);

impl Notify for Recorder {
    fn notify(&self, title: &str, body: &str) {
        self.0.lock().unwrap().push((title.to_string(), body.to_string()));
    }
}

fn app(dir: &Path, recorder: &Recorder) -> Harness<'static, KithApp> {
    let dir = dir.to_path_buf();
    let recorder = recorder.clone();
    Harness::builder().with_size(egui::vec2(1040.0, 700.0)).build_eframe(move |cc| {
        let opts = AppOptions {
            profile_dir: Some(dir.clone()),
            notifier: Some(Box::new(recorder.clone())),
            ..AppOptions::default()
        };
        KithApp::new(&cc.egui_ctx, opts)
    })
}

/// Steps the apps (each frame drains their cores' events) until `done` holds for the first.
fn wait_for(apps: &mut [&mut Harness<'static, KithApp>], what: &str, done: impl Fn(&KithApp) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        for h in apps.iter_mut() {
            h.step();
        }
        if done(apps[0].state()) {
            return;
        }
        let a = apps[0].state();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: screen {}, connection {:?}, problem {:?}, notices {:?}",
            a.screen_name(),
            a.model().connection,
            a.problem(),
            a.model().notices
        );
        std::thread::sleep(Duration::from_millis(15));
    }
}

fn onboard(h: &mut Harness<'static, KithApp>, name: &str) {
    h.run_steps(2);
    h.get_by_label("Choose a display name").type_text(name);
    h.run_steps(2);
    h.get_by_label("Create my identity").click();
    h.run_steps(2);
    h.get_by_label("Continue").click();
    h.run_steps(2);
    assert_eq!(h.state().screen_name(), "connect");
}

/// Hosts on an ephemeral port; returns the port.
fn host(h: &mut Harness<'static, KithApp>) -> u16 {
    h.get_by_label("🏠 Host a hub").click();
    h.run_steps(2);
    fill(h, "Port", "0");
    fill(h, "Hub password", PASSWORD);
    h.get_by_label("Start hosting").click();
    wait_for(&mut [h], "hosting to be ready", |a| a.screen_name() == "main");
    // The invitation opens by itself: where friends connect.
    h.run_steps(2);
    h.get_by_label("Invite friends");
    h.get_by_label("Done").click();
    settle(h);
    let addr = h.state().model().hosting.as_ref().expect("hosting").addr.clone();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn fill(h: &mut Harness<'static, KithApp>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    let old = h.get_by_label(label).value().unwrap_or_default();
    h.key_press(egui::Key::End);
    for _ in 0..old.chars().count() {
        h.key_press(egui::Key::Backspace);
    }
    h.run_steps(1);
    h.get_by_label(label).type_text(text);
    h.run_steps(1);
    if !label.contains("assword") {
        assert_eq!(h.get_by_label(label).value().as_deref(), Some(text));
    }
}

fn join(h: &mut Harness<'static, KithApp>, port: u16) {
    h.get_by_label("🔗 Join a hub").click();
    h.run_steps(2);
    fill(h, "Hub address", &format!("127.0.0.1:{port}"));
    fill(h, "Password", PASSWORD);
    h.get_by_label("Join").click();
}

/// Runs frames until fades and animations (a closing dialog's backdrop) are over.
fn settle(h: &mut Harness<'static, KithApp>) {
    h.run_steps(30);
}

/// Types into the composer and presses Enter.
fn say(h: &mut Harness<'static, KithApp>, text: &str) {
    let composer = h.get_by(|n| n.role() == Role::MultilineTextInput);
    composer.focus();
    h.run_steps(1);
    h.get_by(|n| n.role() == Role::MultilineTextInput).type_text(text);
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
}

/// Alice hosts a hub and bob joins it (profiles under `dir`); neither waits for the other.
/// Returns the hub's port too.
fn alice_hosts_bob_joins(dir: &Path) -> (Harness<'static, KithApp>, Harness<'static, KithApp>, u16) {
    let mut alice = app(&dir.join("alice"), &Recorder::default());
    onboard(&mut alice, "alice");
    let port = host(&mut alice);
    let mut bob = app(&dir.join("bob"), &Recorder::default());
    onboard(&mut bob, "bob");
    join(&mut bob, port);
    (alice, bob, port)
}

fn messages(app: &KithApp, room: &str) -> Vec<String> {
    app.model()
        .room(room)
        .map(|r| r.messages.iter().map(|m| m.text().to_string()).collect())
        .unwrap_or_default()
}

fn peer_named<'a>(app: &'a KithApp, name: &str) -> Option<&'a kith::ui::model::Peer> {
    app.model().peers.values().find(|p| p.name == name && p.online())
}

#[test]
fn onboarding_creates_the_identity_and_shows_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), &Recorder::default());
    h.run_steps(2);
    assert_eq!(h.state().screen_name(), "onboarding");
    h.get_by_label("Choose a display name").type_text("Alice");
    h.run_steps(2);
    h.get_by_label("Create my identity").click();
    h.run_steps(2);
    let profile = kith::net::profile::Profile::open(Some(dir.path())).unwrap();
    let keys = profile.identity().unwrap();
    let fp = kith::protocol::identity::IdentityKey::from(&keys.public).fingerprint().grouped();
    h.get_by_label(&fp);
    assert_eq!(h.state().settings().display_name.as_deref(), Some("Alice"));
    h.get_by_label("Continue").click();
    h.run_steps(2);
    assert_eq!(h.state().screen_name(), "connect");
    // The name survives a restart: the next start goes straight to Connect.
    drop(h);
    let mut again = app(dir.path(), &Recorder::default());
    again.run_steps(2);
    assert_eq!(again.state().screen_name(), "connect");
    again.get_by_label_contains("Signed in as Alice");
}

/// The host's invitation, pasted where the address goes, joins and knows the host at once;
/// with "Include the password" ticked it is all a friend needs.
#[test]
fn an_invitation_pasted_in_the_join_form_joins_and_knows_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = app(&dir.path().join("alice"), &Recorder::default());
    onboard(&mut alice, "alice");
    host(&mut alice);
    alice.get_by_label("📨 Invite").click();
    alice.run_steps(2);
    let shown = |a: &Harness<'static, KithApp>| {
        let links: Vec<String> = a
            .get_all_by_label_contains("kith://join?")
            .filter_map(|n| n.accesskit_node().label().or_else(|| n.value()))
            .collect();
        assert_eq!(links.len(), 1, "one link is shown to copy: {links:?}");
        links[0].clone()
    };
    let without = shown(&alice);
    assert!(!without.contains("password"), "{without}");
    alice.get_by_label_contains("The password is not in it");
    alice.get_by_label("Include the password").click();
    alice.run_steps(2);
    let link = shown(&alice);
    let carried = kith::protocol::invite::Invitation::parse(&link).expect("the shown link parses").password;
    assert_eq!(carried.as_deref().map(String::as_str), Some(PASSWORD), "{link}");
    alice.get_by_label_contains("anyone who sees the link can join");
    alice.get_by_label("Done").click();
    settle(&mut alice);

    let mut bob = app(&dir.path().join("bob"), &Recorder::default());
    onboard(&mut bob, "bob");
    bob.get_by_label("🔗 Join a hub").click();
    bob.run_steps(2);
    // No password typed: the link carries it.
    fill(&mut bob, "Hub address", &link);
    bob.get_by_label("Join").click();
    wait_for(&mut [&mut bob, &mut alice], "bob to secure alice", |b| {
        b.screen_name() == "main" && peer_named(b, "alice").is_some_and(|p| p.secure)
    });
    assert!(peer_named(bob.state(), "alice").is_some_and(|p| p.verified), "the inviter is verified");
}

#[test]
fn host_and_join_then_chat_both_ways_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let mut alice = app(&dir.path().join("alice"), &recorder);
    onboard(&mut alice, "alice");
    let port = host(&mut alice);
    alice.get_by_label("📨 Invite").click();
    alice.run_steps(2);
    assert!(alice.get_all_by_label_contains(&format!(":{port}")).next().is_some(), "an address to copy");
    alice.get_by_label("Done").click();
    settle(&mut alice);

    let mut bob = app(&dir.path().join("bob"), &Recorder::default());
    onboard(&mut bob, "bob");
    join(&mut bob, port);
    wait_for(&mut [&mut bob, &mut alice], "bob to join and secure alice", |b| {
        b.screen_name() == "main" && peer_named(b, "alice").is_some_and(|p| p.secure)
    });
    wait_for(&mut [&mut alice, &mut bob], "alice to secure bob", |a| {
        peer_named(a, "bob").is_some_and(|p| p.secure)
    });
    // Bob's recent hubs remember where he joined.
    assert_eq!(bob.state().settings().recent_hubs[0].addr, format!("127.0.0.1:{port}"));

    say(&mut bob, "hello alice");
    wait_for(&mut [&mut alice, &mut bob], "alice to receive", |a| {
        messages(a, "general").contains(&"hello alice".into())
    });
    alice.get_by_label("hello alice");
    wait_for(&mut [&mut bob, &mut alice], "bob's message to be delivered", |b| {
        b.model().room("general").unwrap().messages.iter().any(|m| {
            m.text() == "hello alice"
                && matches!(&m.delivery, Some(kith::ui::model::Delivery::Sent { recipients: 1, delivered }) if delivered.len() == 1)
        })
    });
    bob.run_steps(2);
    bob.get_by_label("✓✓");

    // Shift+Enter is a new line in the composer; Enter sends.
    let composer = alice.get_by(|n| n.role() == Role::MultilineTextInput);
    composer.focus();
    alice.run_steps(1);
    alice.get_by(|n| n.role() == Role::MultilineTextInput).type_text("hi bob");
    alice.run_steps(1);
    alice.key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    alice.run_steps(1);
    assert_eq!(
        alice.get_by(|n| n.role() == Role::MultilineTextInput).value().as_deref(),
        Some("hi bob\n"),
        "Shift+Enter does not send"
    );
    say(&mut alice, "second line");
    wait_for(&mut [&mut bob, &mut alice], "bob to receive", |b| {
        messages(b, "general").contains(&"hi bob\nsecond line".into())
    });
    // The composer is empty again after sending.
    alice.run_steps(1);
    assert_eq!(alice.get_by(|n| n.role() == Role::MultilineTextInput).value().as_deref(), Some(""));

    // A message while the window is in the background is a desktop notification.
    alice.input_mut().focused = false;
    alice.run_steps(1);
    say(&mut bob, "are you there?");
    wait_for(&mut [&mut alice, &mut bob], "the notification", |_| {
        recorder.0.lock().unwrap().iter().any(|(_, body)| body == "are you there?")
    });
    assert_eq!(alice.state().model().room("general").unwrap().unread, 1, "unread while away");
    alice.input_mut().focused = true;
    alice.run_steps(2);
    assert_eq!(alice.state().model().room("general").unwrap().unread, 0, "read on return");

    // Alice verifies bob in the fingerprint dialog.
    alice.get_by_role_and_label(Role::Button, "bob").click();
    alice.run_steps(2);
    alice.get_by_label("Verify bob");
    let alice_sn = peer_named(alice.state(), "bob").unwrap().safety_number.clone();
    let bob_sn = peer_named(bob.state(), "alice").unwrap().safety_number.clone();
    assert_eq!(alice_sn, bob_sn, "both see the same safety number");
    let first_group = alice_sn.split_whitespace().next().unwrap().to_string();
    alice.get_all_by_label(&first_group).next().expect("safety number shown");
    let emoji = peer_named(alice.state(), "bob").unwrap().sas_emoji.clone();
    assert_eq!(emoji, peer_named(bob.state(), "alice").unwrap().sas_emoji, "both see the same emoji");
    alice.get_by_label("Mark as verified").click();
    wait_for(&mut [&mut alice, &mut bob], "verified", |a| peer_named(a, "bob").is_some_and(|p| p.verified));
    alice.run_steps(2);
    alice.get_by_label("🛡 Verified");
    alice.get_by_label("Remove verification");
    alice.get_by_label("Close").click();
    settle(&mut alice);
    assert!(alice.query_by_label("Verify bob").is_none());
    alice.get_by_label("🛡");
    // The profile is written on a blocking worker, just after the window shows the change.
    let known_peers = dir.path().join("alice/known_peers.json");
    let deadline = Instant::now() + Duration::from_secs(5);
    let known = loop {
        let known = std::fs::read_to_string(&known_peers).unwrap_or_default();
        if known.contains("\"verified\": true") || Instant::now() > deadline {
            break known;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(known.contains("\"verified\": true"), "verification persisted: {known}");

    // A room the hub does not have: explained, and the window stays where it was.
    bob.get_by(|n| n.role() == Role::TextInput).focus();
    bob.run_steps(1);
    bob.get_by(|n| n.role() == Role::TextInput).type_text("nosuchroom");
    bob.run_steps(1);
    bob.get_by_label("+").click();
    wait_for(&mut [&mut bob, &mut alice], "the hub's answer", |b| {
        b.model().notices.iter().any(|n| n.contains("This hub has no room #nosuchroom"))
    });
    bob.run_steps(2);
    assert!(bob.query_by_label("# nosuchroom").is_none(), "no room that was never joined");
    assert_eq!(bob.get_all_by_label("# general").count(), 2, "still in #general (heading and list)");
}

#[test]
fn a_changed_identity_pauses_sending_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, mut bob, port) = alice_hosts_bob_joins(dir.path());
    wait_for(&mut [&mut alice, &mut bob], "alice to secure bob", |a| {
        peer_named(a, "bob").is_some_and(|p| p.secure)
    });
    drop(bob);
    wait_for(&mut [&mut alice], "bob to leave", |a| peer_named(a, "bob").is_none());

    // "bob" again, with a new identity.
    let mut bob2 = app(&dir.path().join("bob-new"), &Recorder::default());
    onboard(&mut bob2, "bob");
    join(&mut bob2, port);
    wait_for(&mut [&mut alice, &mut bob2], "the identity change", |a| {
        peer_named(a, "bob").is_some_and(|p| p.identity_changed && p.secure)
    });
    alice.run_steps(2);
    alice.get_by_label("⚠ Sending is paused: the identity of bob changed.");
    // Enter does not send while paused.
    say(&mut alice, "secret plans");
    assert_eq!(
        alice.get_by(|n| n.role() == Role::MultilineTextInput).value().as_deref(),
        Some("secret plans")
    );
    // The new key's words reach alice (so the path works both ways), marked as such; hers
    // did not reach it.
    say(&mut bob2, "it's me, really");
    wait_for(&mut [&mut alice, &mut bob2], "the new key's message", |a| {
        messages(a, "general").contains(&"it's me, really".into())
    });
    let shown = alice
        .state()
        .model()
        .room("general")
        .unwrap()
        .messages
        .iter()
        .find(|m| m.text() == "it's me, really");
    assert!(shown.is_some_and(|m| m.unconfirmed), "marked as from an unconfirmed key");
    alice.run_steps(2);
    alice.get_by_label("⚠ unconfirmed key");
    assert!(!messages(bob2.state(), "general").contains(&"secret plans".into()));

    alice.get_by_label("Review bob").click();
    alice.run_steps(2);
    alice.get_by_label("⚠ bob's identity changed");
    alice.get_by_label("I understand, send to the new identity").click();
    wait_for(&mut [&mut alice, &mut bob2], "the acknowledgement", |a| {
        peer_named(a, "bob").is_some_and(|p| !p.identity_changed)
    });
    settle(&mut alice);
    alice.get_by_label("Close").click();
    settle(&mut alice);
    assert!(alice.query_by_label("⚠ Sending is paused: the identity of bob changed.").is_none());
    assert!(alice.query_by_label("Verify bob").is_none(), "dialog closed");
    // The draft kept while paused goes out now.
    assert_eq!(
        alice.get_by(|n| n.role() == Role::MultilineTextInput).value().as_deref(),
        Some("secret plans")
    );
    alice.get_by_label("Send").click();
    alice.run_steps(2);
    let sent: Vec<_> = alice
        .state()
        .model()
        .room("general")
        .unwrap()
        .messages
        .iter()
        .map(|m| (m.text().to_string(), m.delivery.clone()))
        .collect();
    assert!(sent.iter().any(|(t, _)| t == "secret plans"), "the draft went out: {sent:?}");
    wait_for(&mut [&mut bob2, &mut alice], "bob2 to receive", |b| {
        messages(b, "general").contains(&"secret plans".into())
    });
}

#[test]
fn a_wrong_password_is_explained_and_the_form_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut alice = app(&dir.path().join("alice"), &Recorder::default());
    onboard(&mut alice, "alice");
    let port = host(&mut alice);
    let mut eve = app(&dir.path().join("eve"), &Recorder::default());
    onboard(&mut eve, "eve");
    eve.get_by_label("🔗 Join a hub").click();
    eve.run_steps(2);
    fill(&mut eve, "Hub address", &format!("127.0.0.1:{port}"));
    fill(&mut eve, "Password", "guess");
    eve.get_by_label("Join").click();
    wait_for(&mut [&mut eve, &mut alice], "the refusal", |e| {
        e.screen_name() == "connect" && e.model().connection.is_none()
    });
    eve.run_steps(2);
    eve.get_by_label("Wrong password");
    eve.get_by_label_contains("Ask the host for the current one");
    // Unreachable: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fill(&mut eve, "Hub address", &closed.to_string());
    eve.get_by_label("Join").click();
    wait_for(&mut [&mut eve], "unreachable", |e| e.model().connection.is_none());
    eve.run_steps(2);
    eve.get_by_label(&format!("Could not reach {closed}"));
}

#[test]
fn a_damaged_settings_file_is_kept_until_the_user_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("settings.json"), b"{\"display_name\": ").unwrap();
    let mut h = app(dir.path(), &Recorder::default());
    h.run_steps(2);
    h.get_by_label("Your settings file is damaged");
    h.get_by_label("Keep the file for now").click();
    h.run_steps(2);
    assert!(h.query_by_label("Your settings file is damaged").is_none());
    // Onboarding on defaults does not overwrite the file.
    h.get_by_label("Choose a display name").type_text("Alice");
    h.run_steps(1);
    h.get_by_label("Create my identity").click();
    h.run_steps(2);
    assert_eq!(std::fs::read(dir.path().join("settings.json")).unwrap(), b"{\"display_name\": ");
    drop(h);

    let mut h = app(dir.path(), &Recorder::default());
    h.run_steps(2);
    h.get_by_label("Reset to defaults").click();
    h.run_steps(2);
    assert!(dir.path().join("settings.json.broken").exists());
    assert!(std::fs::read_to_string(dir.path().join("settings.json")).unwrap().contains("\"theme\""));
}

/// An idle window draws nothing: after input stops, every screen stops asking for frames
/// (kittest's `try_run` fails if repaints keep being requested). The real window is checked
/// too, under Xvfb, by `scripts/measure-gui.sh` (it caught the first-run screen asking for
/// keyboard focus every frame, at 130 % of a core, which this harness does not reproduce).
#[test]
fn every_screen_goes_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path(), &Recorder::default());
    // A window that starts without keyboard focus (as under a bare X server) first.
    h.input_mut().focused = false;
    assert!(h.try_run().is_ok(), "first run screen keeps repainting");
    h.input_mut().focused = true;
    h.get_by_label("Choose a display name").type_text("Alice");
    h.get_by_label("Create my identity").click();
    assert!(h.try_run().is_ok(), "fingerprint screen keeps repainting");
    h.get_by_label("Continue").click();
    assert!(h.try_run().is_ok(), "connect screen keeps repainting");
    h.get_by_label("🔗 Join a hub").click();
    assert!(h.try_run().is_ok(), "join form keeps repainting");
    let events = vec![
        kith::protocol::events::ClientEvent::Ready {
            name: "Alice".into(),
            fingerprint: "a1".repeat(16),
            hub: "h".into(),
        },
        kith::protocol::events::ClientEvent::Joined { room: "general".into() },
        kith::protocol::events::ClientEvent::PeerJoined {
            room: "general".into(),
            peer: "b0".repeat(16),
            name: "bob".into(),
        },
    ];
    h.state_mut().show_fixture(events, "general");
    assert!(h.try_run().is_ok(), "main screen keeps repainting");
    h.get_by_label("⚙").click();
    assert!(h.try_run().is_ok(), "settings keep repainting");
}

/// A file dropped onto the window, as the windowing layer would hand it over.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_dropped_picture_goes_over_the_direct_link_with_progress_and_a_thumbnail() {
    use kith::ui::files::TransferState;
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("alice-downloads");
    std::fs::create_dir_all(dir.path().join("alice")).unwrap();
    let settings = serde_json::json!({ "downloads": downloads.display().to_string(), "stun_servers": [] });
    std::fs::write(dir.path().join("alice/settings.json"), settings.to_string()).unwrap();
    let (mut alice, mut bob, _) = alice_hosts_bob_joins(dir.path());
    wait_for(&mut [&mut bob, &mut alice], "a direct link to alice", |b| {
        peer_named(b, "alice").is_some_and(|p| p.link == kith::protocol::events::LinkKind::Direct)
    });
    bob.run_steps(2);
    bob.get_by_label("🔗 direct");

    // A 900×600 picture with some texture, so it is more than one chunk.
    let picture = dir.path().join("holiday.png");
    image::RgbImage::from_fn(900, 600, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8])
    })
    .save(&picture)
    .unwrap();
    bob.input_mut().dropped_files.push(Arc::new(Dropped(picture.clone())));
    bob.run_steps(1);
    wait_for(&mut [&mut alice, &mut bob], "the offer", |a| a.model().files.waiting_for_us() == 1);
    alice.run_steps(2);
    alice.get_by_label_contains("holiday.png");
    alice.get_by_label("Accept").click();
    wait_for(&mut [&mut alice, &mut bob], "the file", |a| {
        a.model().files.list.iter().any(|t| t.state == TransferState::Done)
    });
    let got = std::fs::read(downloads.join("holiday.png")).expect("saved in the chosen folder");
    assert_eq!(got, std::fs::read(&picture).unwrap());
    let id = alice.state().model().files.list[0].id.clone();
    wait_for(&mut [&mut alice, &mut bob], "the thumbnail", |a| a.thumbnail_size(&id).is_some());
    assert_eq!(alice.state().thumbnail_size(&id), Some([96, 64]));
    alice.run_steps(2);
    alice.get_by_label_contains("checksum verified");
    wait_for(&mut [&mut bob, &mut alice], "bob to hear it arrived", |b| {
        b.model().files.list.iter().any(|t| t.state == TransferState::Done && !t.incoming)
    });
    bob.run_steps(2);
    bob.get_by_label_contains("Delivered");
}

/// Three people in a call from the window, each with the test-pattern camera: every window
/// shows the other two's video and its own self-view (pictures keep being uploaded), the
/// stats overlay toggles, and a camera turned off gives way to initials at the others.
#[test]
fn three_windows_in_a_call_see_each_others_test_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let settings = serde_json::json!({
        "stun_servers": [], "camera": "test-pattern", "camera_size": "320x180", "camera_fps": 15
    });
    for who in ["alice", "bob", "carol"] {
        std::fs::create_dir_all(dir.path().join(who)).unwrap();
        std::fs::write(dir.path().join(who).join("settings.json"), settings.to_string()).unwrap();
    }
    let (mut alice, mut bob, port) = alice_hosts_bob_joins(dir.path());
    let mut carol = app(&dir.path().join("carol"), &Recorder::default());
    onboard(&mut carol, "carol");
    join(&mut carol, port);
    wait_for(&mut [&mut alice, &mut bob, &mut carol], "direct links to bob and carol", |a| {
        ["bob", "carol"]
            .iter()
            .all(|n| peer_named(a, n).is_some_and(|p| p.link == kith::protocol::events::LinkKind::Direct))
    });
    wait_for(&mut [&mut carol, &mut alice, &mut bob], "carol's link to bob", |c| {
        peer_named(c, "bob").is_some_and(|p| p.link == kith::protocol::events::LinkKind::Direct)
    });
    alice.run_steps(2);
    alice.get_by_label("📞 Call").click();
    for h in [&mut bob, &mut carol] {
        wait_for(&mut [h, &mut alice], "the call to ring", |b| {
            b.model().calls.values().any(|c| c.phase == kith::ui::model::CallPhase::Ringing)
        });
        h.run_steps(2);
        h.get_by_label("Accept").click();
        h.run_steps(2);
    }
    for h in [&mut alice, &mut bob, &mut carol] {
        h.run_steps(2);
        h.get_by_label("📹 Start camera").click();
        h.run_steps(2);
    }
    let fp =
        |h: &Harness<'static, KithApp>, name: &str| peer_named(h.state(), name).unwrap().fingerprint.clone();
    let (bob_fp, carol_fp) = (fp(&alice, "bob"), fp(&alice, "carol"));
    let uploads = |a: &KithApp, peer: Option<&str>| a.video_uploads(peer).map_or(0, |(n, _)| n);
    wait_for(&mut [&mut alice, &mut bob, &mut carol], "video from bob and carol, and the self-view", |a| {
        uploads(a, Some(&bob_fp)) >= 10 && uploads(a, Some(&carol_fp)) >= 10 && uploads(a, None) >= 10
    });
    let alice_fp = fp(&bob, "alice");
    wait_for(&mut [&mut bob, &mut alice, &mut carol], "bob sees alice and carol", |b| {
        uploads(b, Some(&alice_fp)) >= 10 && uploads(b, Some(&carol_fp)) >= 10
    });
    assert_eq!(alice.state().video_uploads(Some(&bob_fp)).map(|(_, s)| s), Some([320, 180]));
    // Pictures keep coming: the tiles update.
    let before = uploads(alice.state(), Some(&carol_fp));
    wait_for(&mut [&mut alice, &mut bob, &mut carol], "more of carol's pictures", |a| {
        uploads(a, Some(&carol_fp)) >= before + 10
    });
    for name in ["alice (you)", "bob", "carol"] {
        alice.get_by_label(&format!("Video of {name}"));
    }
    // The stats overlay: on, with each peer's numbers once reported, and off again.
    alice.get_by_label("📊 Stats").click();
    wait_for(&mut [&mut alice, &mut bob, &mut carol], "video stats", |a| {
        [&bob_fp, &carol_fp].iter().all(|fp| a.model().call_media.video.get(*fp).is_some_and(|v| v.fps > 0))
    });
    alice.run_steps(2);
    let overlays = |h: &Harness<'static, KithApp>| h.query_all_by_label_contains("320×180 ·").count();
    assert_eq!(overlays(&alice), 2, "the overlay shows bob's and carol's size");
    alice.get_by_label("📊 Stats").click();
    alice.run_steps(2);
    assert_eq!(overlays(&alice), 0, "the overlay is off");
    // Carol turns her camera off: alice hears so.
    carol.get_by_label("📹 Stop camera").click();
    wait_for(&mut [&mut alice, &mut carol, &mut bob], "carol's camera off", |a| {
        a.model().joined_call().is_some_and(|(_, c)| c.media.get(&carol_fp).is_some_and(|m| !m.camera))
    });
}
