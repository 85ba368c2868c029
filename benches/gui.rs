//! Frame cost of the chat view with a 10 000-message room, scrolling every frame: the egui pass
//! (layout of the visible rows, the virtual list's bookkeeping for all of them) and
//! tessellation, as the app runs them on the UI thread. GPU upload and presentation are not in
//! these figures (they do not depend on the message count).
//!
//! `cargo bench --bench gui`

use std::sync::Arc;
use std::time::Instant;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kith::protocol::events::ClientEvent;
use kith::ui::notify::Notify;
use kith::ui::{AppOptions, KithApp};

const NOW: u64 = 1_795_444_200_000;
const MESSAGES: usize = 10_000;
const FRAMES: usize = 600;

struct Silent;
impl Notify for Silent {
    fn notify(&self, _: &str, _: &str) {}
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("settings.json"), r#"{"display_name":"Alice","theme":"dark"}"#)
        .expect("settings");
    let profile = dir.path().to_path_buf();
    let mut h = Harness::builder().with_size(egui::vec2(1040.0, 700.0)).build_eframe(move |cc| {
        KithApp::new(
            &cc.egui_ctx,
            AppOptions {
                profile_dir: Some(profile.clone()),
                clock: Arc::new(|| NOW),
                notifier: Some(Box::new(Silent)),
                ..AppOptions::default()
            },
        )
    });
    let words = ["lake", "photos", "tomorrow", "the", "hub", "works", "great", "see", "you", "at", "noon"];
    let mut events = vec![
        ClientEvent::Ready { name: "Alice".into(), fingerprint: "a1".repeat(16), hub: "hub".into() },
        ClientEvent::Joined { room: "general".into() },
        ClientEvent::PeerJoined { room: "general".into(), peer: "b0".repeat(16), name: "bob".into() },
    ];
    for i in 0..MESSAGES {
        // 3 to 60 words: one to several wrapped lines.
        let len = 3 + (i * 7919) % 58;
        let text: Vec<&str> = (0..len).map(|w| words[(i + w * 31) % words.len()]).collect();
        let (from, name) = if i % 3 == 0 { ("b0".repeat(16), "bob") } else { ("ca".repeat(16), "carol") };
        events.push(ClientEvent::Message {
            id: format!("m{i}"),
            room: "general".into(),
            from,
            name: name.into(),
            text: format!("#{i}: {}", text.join(" ")),
            sent_at: NOW - (MESSAGES - i) as u64 * 20_000,
            expires_at: None,
            unconfirmed: false,
        });
    }
    h.state_mut().show_fixture(events, "general");
    h.run_steps(5);
    let center = egui::pos2(600.0, 350.0);
    h.event(egui::Event::PointerMoved(center));
    // The newest message is on screen at the start (stuck to the bottom).
    assert!(h.query_by_label_contains(&format!("#{}: ", MESSAGES - 1)).is_some());
    let mut times = Vec::with_capacity(FRAMES);
    for f in 0..FRAMES {
        // Up for the first half (from the newest), then back down; a flick of 120 px a frame.
        let dy = if f < FRAMES / 2 { 120.0 } else { -120.0 };
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, dy),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
        let t = Instant::now();
        h.step();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if f == FRAMES / 2 - 1 {
            // Really scrolled: the newest is gone, older ones are laid out instead.
            assert!(h.query_by_label_contains(&format!("#{}: ", MESSAGES - 1)).is_none(), "did not scroll");
            let shown = h.query_all_by_label_contains(": ").count();
            println!("after scrolling up: {shown} rows laid out");
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "chat view, {MESSAGES} messages, scrolling {FRAMES} frames: mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (budget at 60 fps: 16.7 ms)",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
