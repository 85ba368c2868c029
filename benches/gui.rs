//! Frame cost on the UI thread, two cases:
//!
//! 1. The chat view with a 10 000-message room, scrolling every frame: the egui pass (layout of
//!    the visible rows, the virtual list's bookkeeping for all of them) and tessellation. GPU
//!    upload and presentation are not in these figures (they do not depend on the message
//!    count).
//! 2. The call grid with six live video tiles: five peers and the self-view, each a thread
//!    publishing 1280×720 test-pattern pictures at 30 fps into its tile (converted to RGBA on
//!    that thread, as a decoder thread does), the window drawing at 60 fps: each frame takes
//!    every new picture, uploads it into its wgpu texture (lavapipe here: a CPU copy) and is
//!    drawn and submitted as eframe's window does it, into an offscreen target (no swapchain,
//!    no read-back). Two figures: the UI thread's time to submit, and the time until the GPU
//!    (lavapipe: threads on the same two cores) finished the frame.
//!
//! `cargo bench --bench gui`

use std::sync::{Arc, Mutex};
use std::time::Instant;

use eframe::egui_wgpu::{self, wgpu};
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
    chat();
    six_tiles();
}

/// The app on an onboarded profile, rendered with wgpu when `wgpu` (textures really uploaded;
/// the render state is handed back so that frames can be drawn as the window draws them).
fn harness(
    size: egui::Vec2,
    wgpu: bool,
) -> (tempfile::TempDir, Harness<'static, KithApp>, Option<egui_wgpu::RenderState>) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("settings.json"), r#"{"display_name":"Alice","theme":"dark"}"#)
        .expect("settings");
    let profile = dir.path().to_path_buf();
    let render_state = Arc::new(Mutex::new(None));
    let builder = Harness::builder().with_size(size);
    let builder = if wgpu { builder.wgpu() } else { builder };
    let kept = render_state.clone();
    let h = builder.build_eframe(move |cc| {
        *kept.lock().expect("render state") = cc.wgpu_render_state.clone();
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
    let render_state = render_state.lock().expect("render state").take();
    (dir, h, render_state)
}

/// Draws a harness's last frame the way eframe's wgpu window does (tessellate, upload the
/// vertex buffers, one render pass, submit; the staging memory of the texture uploads is
/// freed when the GPU is done), into an offscreen target instead of a swapchain image, and
/// without reading it back.
struct Draw {
    state: egui_wgpu::RenderState,
    target: wgpu::TextureView,
    screen: egui_wgpu::ScreenDescriptor,
}

impl Draw {
    fn new(state: egui_wgpu::RenderState, size: egui::Vec2) -> Self {
        let size_in_pixels = [size.x as u32, size.y as u32];
        let target = state.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("bench target"),
            size: wgpu::Extent3d {
                width: size_in_pixels[0],
                height: size_in_pixels[1],
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: state.target_format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        let target = target.create_view(&wgpu::TextureViewDescriptor::default());
        Self { state, target, screen: egui_wgpu::ScreenDescriptor { size_in_pixels, pixels_per_point: 1.0 } }
    }

    /// Records and submits the frame; returns the submission to wait for.
    fn submit(&self, h: &Harness<'_, KithApp>) -> wgpu::SubmissionIndex {
        let output = h.output();
        let tessellated = h.ctx.tessellate(output.shapes.clone(), output.pixels_per_point);
        let mut renderer = self.state.renderer.write();
        let mut encoder =
            self.state.device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let user = renderer.update_buffers(
            &self.state.device,
            &self.state.queue,
            &mut encoder,
            &tessellated,
            &self.screen,
        );
        {
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("bench pass"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &self.target,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                            store: wgpu::StoreOp::Store,
                        },
                        depth_slice: None,
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            renderer.render(&mut pass, &tessellated, &self.screen);
        }
        self.state.queue.submit(user.into_iter().chain(std::iter::once(encoder.finish())))
    }

    fn wait(&self, submission: wgpu::SubmissionIndex) {
        self.state
            .device
            .poll(wgpu::PollType::Wait { submission_index: Some(submission), timeout: None })
            .expect("GPU done");
    }
}

fn chat() {
    let (_dir, mut h, _) = harness(egui::vec2(1040.0, 700.0), false);
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
    println!(
        "chat view, {MESSAGES} messages, scrolling {FRAMES} frames: {} (budget at 60 fps: 16.7 ms)",
        summary(&mut times)
    );
}

/// Mean and percentiles of frame times in milliseconds.
fn summary(times: &mut [f64]) -> String {
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    format!("mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", pct(0.5), pct(0.99), pct(1.0))
}

/// Six tiles of 720p video at 30 fps each, the window at 60 fps, for 10 s.
fn six_tiles() {
    use kith::core::{Fingerprint, TileKey};
    use kith::media::video::frame::VideoSize;
    use kith::media::video::pattern::TestPattern;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    const SECONDS: u64 = 10;
    let window = egui::vec2(1280.0, 800.0);
    let (_dir, mut h, state) = harness(window, true);
    let draw = Draw::new(state.expect("wgpu render state"), window);
    let peers: Vec<String> = (0..5).map(|i| format!("{:02x}", 0xb0 + i).repeat(16)).collect();
    let mut events = vec![
        ClientEvent::Ready { name: "Alice".into(), fingerprint: "a1".repeat(16), hub: "hub".into() },
        ClientEvent::Joined { room: "general".into() },
        ClientEvent::Camera { on: true, available: true },
    ];
    for (i, fp) in peers.iter().enumerate() {
        events.push(ClientEvent::PeerJoined {
            room: "general".into(),
            peer: fp.clone(),
            name: format!("peer {i}"),
        });
    }
    events.push(ClientEvent::Call { room: "general".into(), state: "joined".into(), members: peers.clone() });
    for fp in &peers {
        events.push(ClientEvent::CallMedia {
            room: "general".into(),
            peer: fp.clone(),
            camera: true,
            muted: false,
        });
    }
    h.state_mut().show_fixture(events, "general");
    let stop = Arc::new(AtomicBool::new(false));
    let mut keys = vec![TileKey::Me];
    keys.extend(peers.iter().map(|fp| TileKey::Peer(Fingerprint::parse(fp).expect("fingerprint"))));
    // The same grid before any picture came (initials on plain tiles): what drawing the
    // window costs without video, for comparison.
    h.run_steps(10);
    let mut idle: Vec<f64> = (0..30)
        .map(|_| {
            let t = Instant::now();
            h.step();
            draw.wait(draw.submit(&h));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    idle.sort_by(f64::total_cmp);
    println!(
        "call grid before any picture came: frame until the GPU finished it, p50 {:.2} ms",
        idle[idle.len() / 2]
    );
    let senders: Vec<_> = keys
        .iter()
        .map(|key| {
            let mut writer = h.state().tiles().open(*key);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut pattern = TestPattern::new(VideoSize::HD, 30);
                let started = Instant::now();
                let mut published = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let wall = (now - started).as_millis() as u32;
                    if let Some(p) = pattern.capture(now, wall) {
                        writer.publish(&p.picture()).expect("publish");
                        published += 1;
                    }
                    let due = pattern.next_due().unwrap_or(now + Duration::from_millis(33));
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                published
            })
        })
        .collect();
    h.run_steps(10);
    let (mut times, mut drawn) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(SECONDS) {
        let t = Instant::now();
        h.step();
        let submission = draw.submit(&h);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        draw.wait(submission);
        drawn.push(t.elapsed().as_secs_f64() * 1000.0);
        next += Duration::from_micros(16_667);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    let published: u64 = senders.into_iter().map(|t| t.join().expect("sender")).sum();
    let uploaded: u64 = std::iter::once(None)
        .chain(peers.iter().map(|fp| Some(fp.as_str())))
        .filter_map(|k| h.state().video_uploads(k).map(|(n, _)| n))
        .sum();
    let texture = h.state().video_texture_size(Some(&peers[0])).unwrap_or_default();
    println!(
        "call grid, six 1280×720 tiles at 30 fps, {} frames in {SECONDS} s; {uploaded} of {published} pictures uploaded, each {}×{}",
        times.len(),
        texture[0],
        texture[1]
    );
    for (what, times) in [
        ("UI thread (egui pass, texture uploads, tessellation, draw recorded and submitted)", &mut times),
        ("until the GPU finished drawing it (lavapipe: on the CPU)", &mut drawn),
    ] {
        println!("  frame, {what}: {}", summary(times));
    }
}
