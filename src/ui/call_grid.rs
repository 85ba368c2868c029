//! The call grid: a tile per person in the call we are in (us first), laid out to fill the
//! space (1, 2, 2×2, 3×2 …). A tile shows the person's video while it comes, their initials
//! otherwise; their name, the verified badge, muted, and a ring while they speak. Clicking a
//! tile focuses it (large, the others in a strip below); clicking it again goes back to the
//! grid. The stats overlay (resolution, frame rate, bitrate, round trip, loss, jitter buffer)
//! is the call bar's switch.

use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, Ui, Vec2};

use super::actions::Frame;
use super::style;
use super::view::ViewState;
use crate::core::{Fingerprint, TileKey};

/// A voice this loud (dBFS over the last second) lights its ring.
pub const SPEAKING_DB: i32 = -45;
/// Tiles are laid out for pictures of this shape (what cameras send).
const ASPECT: f32 = 16.0 / 9.0;
const GAP: f32 = 6.0;
/// The strip under a focused tile.
const STRIP: f32 = 96.0;

/// One person in the grid.
struct Person {
    key: TileKey,
    fingerprint: String,
    name: String,
    camera: bool,
    muted: bool,
    speaking: bool,
    verified: bool,
}

/// The grid's columns for `n` tiles in `space`: the count that makes tiles of [`ASPECT`] the
/// largest.
pub fn columns(n: usize, space: Vec2) -> usize {
    let n = n.max(1);
    let area = |cols: usize| {
        let rows = n.div_ceil(cols);
        let w = ((space.x - GAP * (cols - 1) as f32) / cols as f32).max(1.0);
        let h = ((space.y - GAP * (rows - 1) as f32) / rows as f32).max(1.0);
        let w = w.min(h * ASPECT);
        w * w / ASPECT
    };
    (1..=n).max_by(|a, b| area(*a).total_cmp(&area(*b)).then(b.cmp(a))).unwrap_or(1)
}

/// The rectangles of `n` tiles in `space`, row by row, each row centred.
pub fn layout(n: usize, space: Rect) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let cols = columns(n, space.size());
    let rows = n.div_ceil(cols);
    let w = (space.width() - GAP * (cols - 1) as f32) / cols as f32;
    let h = (space.height() - GAP * (rows - 1) as f32) / rows as f32;
    let (w, h) = if w > h * ASPECT { (h * ASPECT, h) } else { (w, w / ASPECT) };
    let top = space.top() + (space.height() - rows as f32 * h - GAP * (rows - 1) as f32) / 2.0;
    (0..n)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = (n - row * cols).min(cols);
            let left = space.left() + (space.width() - in_row as f32 * w - GAP * (in_row - 1) as f32) / 2.0;
            let min = Pos2::new(left + col as f32 * (w + GAP), top + row as f32 * (h + GAP));
            Rect::from_min_size(min, Vec2::new(w, h))
        })
        .collect()
}

fn people(f: &Frame, muted: bool) -> Vec<Person> {
    let Some((_, call)) = f.model.joined_call() else { return Vec::new() };
    let me = Person {
        key: TileKey::Me,
        fingerprint: f.model.me_fingerprint.clone(),
        name: format!("{} (you)", f.model.me_name),
        camera: f.model.camera.on && f.model.camera.available,
        muted,
        speaking: !muted && f.mic_level_db.is_some_and(|db| db > SPEAKING_DB as f32),
        verified: false,
    };
    let others = call.members.iter().filter_map(|fp| {
        let key = Fingerprint::parse(fp)?;
        let media = call.media.get(fp).copied().unwrap_or_default();
        let peer = f.model.peers.get(fp);
        Some(Person {
            key: TileKey::Peer(key),
            fingerprint: fp.clone(),
            name: f.model.name_of(fp),
            camera: media.camera,
            muted: media.muted,
            speaking: f.model.call_media.stats.get(fp).is_some_and(|s| s.level_db > SPEAKING_DB),
            verified: peer.is_some_and(|p| p.verified),
        })
    });
    std::iter::once(me).chain(others).collect()
}

/// The grid, in the space it is given.
pub fn show(ui: &mut Ui, f: &Frame, view: &mut ViewState) {
    let people = people(f, view.muted);
    let keys: Vec<TileKey> = people.iter().map(|p| p.key).collect();
    view.video.retain(|k| keys.contains(k));
    if view.focus.is_some_and(|k| !keys.contains(&k)) {
        view.focus = None;
    }
    let space = ui.available_rect_before_wrap();
    ui.allocate_rect(space, Sense::hover());
    let rects: Vec<(usize, Rect)> = match view.focus.and_then(|k| keys.iter().position(|x| *x == k)) {
        Some(focused) if people.len() > 1 => {
            let strip_h = STRIP.min(space.height() / 3.0);
            let (big, strip) = space.split_top_bottom_at_y(space.bottom() - strip_h);
            let big = big.shrink2(Vec2::new(0.0, GAP / 2.0));
            let others: Vec<usize> = (0..people.len()).filter(|i| *i != focused).collect();
            let main = layout(1, big).into_iter().map(|r| (focused, r));
            let small = others.iter().copied().zip(strip_row(others.len(), strip));
            main.chain(small).collect()
        }
        _ => layout(people.len(), space).into_iter().enumerate().collect(),
    };
    for (i, rect) in rects {
        tile(ui, f, view, &people[i], rect);
    }
}

/// Small tiles side by side in `strip`, centred.
fn strip_row(n: usize, strip: Rect) -> Vec<Rect> {
    let h = strip.height();
    let w = h * ASPECT;
    let total = n as f32 * w + GAP * n.saturating_sub(1) as f32;
    let left = strip.center().x - total / 2.0;
    (0..n)
        .map(|i| Rect::from_min_size(Pos2::new(left + i as f32 * (w + GAP), strip.top()), Vec2::new(w, h)))
        .collect()
}

fn tile(ui: &mut Ui, f: &Frame, view: &mut ViewState, p: &Person, rect: Rect) {
    let id = ui.scope_id().with(("tile", &p.fingerprint));
    let response = ui.interact(rect, id, Sense::click());
    let label = format!("Video of {}", p.name);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    if response.clicked() {
        view.focus = if view.focus == Some(p.key) { None } else { Some(p.key) };
    }
    let response = response.on_hover_text(if view.focus == Some(p.key) {
        "Click to go back to the grid"
    } else {
        "Click to show this person large"
    });
    let painter = ui.painter_at(rect);
    let dark = ui.visuals().dark_mode;
    painter.rect_filled(rect, 8.0, if dark { Color32::from_gray(48) } else { Color32::from_gray(64) });
    let shown = view.video.shown(&p.key).filter(|_| p.camera);
    match &shown {
        Some(video) => {
            let [w, h] = video.size.map(|v| v as f32);
            let fit = (rect.width() / w).min(rect.height() / h);
            let area = Rect::from_center_size(rect.center(), Vec2::new(w * fit, h * fit));
            let pixels = area.size() * ui.ctx().pixels_per_point();
            view.video.draws_at(&p.key, [pixels.x.round() as u32, pixels.y.round() as u32]);
            let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
            painter.image(video.texture, area, uv, Color32::WHITE);
            // A picture that stops coming gives way to the initials: look again then.
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(2100));
        }
        None => {
            let r = (rect.height().min(rect.width()) * 0.22).clamp(12.0, 64.0);
            painter.circle_filled(rect.center(), r, style::person_color(&p.fingerprint, dark));
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                initials(&p.name),
                egui::FontId::proportional(r * 0.9),
                Color32::WHITE,
            );
        }
    }
    if p.speaking {
        painter.rect_stroke(rect.shrink(1.5), 8.0, Stroke::new(3.0, style::OK), egui::StrokeKind::Inside);
    } else if response.hovered() {
        painter.rect_stroke(rect.shrink(0.5), 8.0, Stroke::new(1.0, Color32::GRAY), egui::StrokeKind::Inside);
    }
    name_plate(ui, p, rect);
    if view.video_stats {
        stats_overlay(ui, f, p, rect, shown.as_ref().map(|s| s.source));
    }
}

/// Name, verified badge and muted, at the tile's lower left, over a dark band.
fn name_plate(ui: &mut Ui, p: &Person, rect: Rect) {
    let mut text = String::new();
    if p.muted {
        text.push_str("🔇 ");
    }
    text.push_str(&p.name);
    let mut job = egui::text::LayoutJob::default();
    job.append(&text, 0.0, egui::TextFormat::simple(egui::FontId::proportional(14.0), Color32::WHITE));
    if p.verified {
        job.append(" 🛡", 0.0, egui::TextFormat::simple(egui::FontId::proportional(14.0), style::OK));
    }
    let galley = ui.painter().layout_job(job);
    let pad = Vec2::new(8.0, 4.0);
    let size = galley.size() + pad * 2.0;
    let at = Pos2::new(rect.left() + 6.0, rect.bottom() - 6.0 - size.y);
    let band = Rect::from_min_size(at, size).intersect(rect);
    let painter = ui.painter_at(rect);
    painter.rect_filled(band, 4.0, Color32::from_black_alpha(150));
    painter.galley(at + pad, galley, Color32::WHITE);
}

/// The numbers behind a tile, at its upper left; a label, so the accessibility tree has it.
fn stats_overlay(ui: &mut Ui, f: &Frame, p: &Person, rect: Rect, picture: Option<[usize; 2]>) {
    let text = match p.key {
        TileKey::Me => match picture {
            Some([w, h]) => format!("sending {w}×{h}"),
            None if p.camera => "camera starting…".to_string(),
            None => "camera off".to_string(),
        },
        TileKey::Peer(_) => {
            let m = &f.model.call_media;
            let mut lines = Vec::new();
            match m.video.get(&p.fingerprint) {
                Some(v) if v.fps > 0 => {
                    lines.push(format!("{}×{} · {} fps · {} kbit/s", v.width, v.height, v.fps, v.kbps))
                }
                _ => lines.push("no video".to_string()),
            }
            let rtt = m.rtt_ms.get(&p.fingerprint).map_or("RTT –".to_string(), |r| format!("RTT {r} ms"));
            match m.stats.get(&p.fingerprint) {
                Some(a) => {
                    lines.push(format!("{rtt} · lost {} · jitter buffer {} ms", a.lost, a.jitter_buffer_ms))
                }
                None => lines.push(format!("{rtt} · no audio yet")),
            }
            lines.join("\n")
        }
    };
    let at = Rect::from_min_size(rect.min + Vec2::splat(6.0), Vec2::new(rect.width() - 12.0, 60.0));
    let label = egui::Label::new(RichText::new(text).monospace().size(11.0).color(Color32::WHITE))
        .selectable(false)
        .wrap_mode(egui::TextWrapMode::Wrap);
    let band = egui::Frame::new().fill(Color32::from_black_alpha(150)).corner_radius(4.0).inner_margin(4.0);
    ui.scope_builder(egui::UiBuilder::new().max_rect(at), |ui| {
        band.show(ui, |ui| ui.add(label));
    });
}

/// Up to two letters: the first of the first two words ("Ada Lovelace" → "AL").
pub fn initials(name: &str) -> String {
    let name = name.trim_end_matches(" (you)");
    let letters: String =
        name.split_whitespace().filter_map(|w| w.chars().find(|c| c.is_alphanumeric())).take(2).collect();
    if letters.is_empty() { "?".into() } else { letters.to_uppercase() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_fills_a_wide_window_with_the_usual_shapes() {
        let wide = Vec2::new(1600.0, 900.0);
        let shapes: Vec<usize> = (1..=6).map(|n| columns(n, wide)).collect();
        assert_eq!(shapes, [1, 2, 2, 2, 3, 3], "1, 2, 2×2, 3×2");
        assert_eq!(columns(2, Vec2::new(400.0, 900.0)), 1, "a tall space stacks two");
        let rects = layout(3, Rect::from_min_size(Pos2::ZERO, wide));
        assert_eq!(rects.len(), 3);
        for r in &rects {
            assert!((r.width() / r.height() - ASPECT).abs() < 0.01);
            assert!(Rect::from_min_size(Pos2::ZERO, wide).expand(0.01).contains_rect(*r));
        }
        // The third, alone in its row, is centred under the two.
        assert!((rects[2].center().x - 800.0).abs() < 0.5);
        assert!(rects[0].right() < rects[1].left(), "no overlap");
    }

    #[test]
    fn initials_take_the_first_letters_of_two_words() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("bob (you)"), "B");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials("élise martin dupont"), "ÉM");
    }
}
