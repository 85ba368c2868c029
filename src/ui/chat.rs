//! The conversation: a virtual list that lays out only the rows on screen, so a room with
//! tens of thousands of messages scrolls as fast as one with ten.
//!
//! Rows differ in height (wrapped text), so each row's height is measured when it is drawn and
//! cached, view-side in [`Rows`], with the width it was measured at; rows never drawn at this
//! width are estimated from their length. Sticking to the bottom is egui's: it follows new messages while the view
//! is at the end and stops when the user scrolls up.

use chrono::{DateTime, FixedOffset, Local, TimeZone};
use egui::{Align, Layout, RichText, Ui, UiBuilder};

use super::model::{Body, Delivery, Message, Room};
use super::style;

/// Space between rows.
const GAP: f32 = 6.0;

/// One room's laid-out rows, in the room's `seq` order, one per message, and where each one
/// starts: a frame finds the rows on screen by binary search and lays out only those, so its
/// work does not grow with the room.
#[derive(Debug, Default)]
pub struct Rows {
    rows: Vec<Row>,
    /// `tops[i]` is where row `i` starts, `tops[rows.len()]` the total height; right for the
    /// first `valid + 1` entries at `width`.
    tops: Vec<f32>,
    valid: usize,
    width: f32,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    seq: u64,
    /// Width the height was measured at; `None` until the row is drawn.
    measured: Option<(f32, f32)>,
}

impl Rows {
    /// Lines the rows up with `messages`: rows of removed messages go, new messages get a row
    /// not yet measured. Messages are only appended or removed, so when the ends and the
    /// count match nothing changed, and otherwise one merge walk lines them up. Appending
    /// keeps the positions already known; a removal recomputes them.
    fn align(&mut self, messages: &[Message]) {
        let ends = |first: Option<u64>, last: Option<u64>| {
            first == messages.first().map(|m| m.seq) && last == messages.last().map(|m| m.seq)
        };
        if self.rows.len() == messages.len()
            && ends(self.rows.first().map(|r| r.seq), self.rows.last().map(|r| r.seq))
        {
            return;
        }
        let before = self.rows.len();
        let appended = before <= messages.len()
            && self.rows.first().map(|r| r.seq) == messages.first().map(|m| m.seq)
            && self.rows.last().map(|r| r.seq) == before.checked_sub(1).map(|i| messages[i].seq);
        let mut old = std::mem::take(&mut self.rows).into_iter().peekable();
        self.rows = messages
            .iter()
            .map(|m| {
                while old.next_if(|r| r.seq < m.seq).is_some() {}
                old.next_if(|r| r.seq == m.seq).unwrap_or(Row { seq: m.seq, measured: None })
            })
            .collect();
        // The last old row's height may change: a new message can start a group after it.
        self.valid = if appended { self.valid.min(before.saturating_sub(1)) } else { 0 };
    }

    /// Brings `tops` up to date at `width`, using measured heights where there are some and
    /// `estimate` elsewhere.
    fn place(&mut self, width: f32, estimate: impl Fn(usize) -> f32) {
        if self.width != width {
            self.width = width;
            self.valid = 0;
        }
        self.tops.resize(self.rows.len() + 1, 0.0);
        self.tops[0] = 0.0;
        for i in self.valid..self.rows.len() {
            let h = match self.rows[i].measured {
                Some((w, h)) if w == width => h,
                _ => estimate(i),
            };
            self.tops[i + 1] = self.tops[i] + h + GAP;
        }
        self.valid = self.rows.len();
    }

    /// The first row whose bottom is below `y`.
    fn first_below(&self, y: f32) -> usize {
        self.tops[1..].partition_point(|bottom| *bottom < y)
    }

    /// Records row `i`'s height as drawn; true when it differs from what was assumed.
    fn measured(&mut self, i: usize, width: f32, h: f32) -> bool {
        let Some(row) = self.rows.get_mut(i) else { return false };
        if row.measured == Some((width, h)) {
            return false;
        }
        row.measured = Some((width, h));
        let assumed = self.tops[i + 1] - self.tops[i] - GAP;
        self.valid = self.valid.min(i);
        (h - assumed).abs() > 0.5
    }
}

pub fn show(
    ui: &mut Ui,
    room: &Room,
    rows: &mut Rows,
    me: &str,
    now_ms: u64,
    utc_offset: Option<FixedOffset>,
) {
    rows.align(&room.messages);
    if room.messages.is_empty() {
        ui.centered_and_justified(|ui| {
            ui.label(RichText::new(format!("No messages in #{} yet. Say hello!", room.name)).weak());
        });
        return;
    }
    let dark = ui.visuals().dark_mode;
    let line = ui.text_style_height(&egui::TextStyle::Body);
    let mut soonest_expiry: Option<u64> = None;
    egui::ScrollArea::vertical()
        .id_salt(("chat", &room.name))
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show_viewport(ui, |ui, viewport| {
            let width = ui.available_width();
            // Characters per line, for estimates only: O(1) per message, the line breaks
            // counted once when it arrived.
            let per_line = (width / (line * 0.5)).max(8.0);
            let messages = &room.messages;
            rows.place(width, |i| {
                let m = &messages[i];
                let lines = (m.text().len() as f32 / per_line).ceil().max(1.0) + m.newlines as f32;
                let header = if starts_group(messages, i) { line + 4.0 } else { 0.0 };
                header + lines * line
            });
            ui.set_height(rows.tops[messages.len()]);
            let top = ui.max_rect().top();
            let mut i = rows.first_below(viewport.min.y);
            let mut y = rows.tops[i];
            let mut remeasured = false;
            while i < messages.len() && y <= viewport.max.y {
                let assumed = rows.tops[i + 1] - rows.tops[i] - GAP;
                let rect = egui::Rect::from_min_size(
                    egui::pos2(ui.max_rect().left(), top + y),
                    egui::vec2(width, assumed),
                );
                let header = starts_group(messages, i);
                let msg = &messages[i];
                let mut row = ui.new_child(
                    UiBuilder::new().max_rect(rect).id_salt(msg.seq).layout(Layout::top_down(Align::Min)),
                );
                draw_row(&mut row, msg, header, me, now_ms, utc_offset, dark);
                let h = row.min_rect().height();
                remeasured |= rows.measured(i, width, h);
                if let Some(at) = msg.expires_at.filter(|at| *at > now_ms) {
                    soonest_expiry = Some(soonest_expiry.map_or(at, |s| s.min(at)));
                }
                y += h + GAP;
                i += 1;
            }
            if remeasured {
                // Estimates were off: lay out once more with the real heights.
                ui.ctx().request_repaint();
            }
        });
    if let Some(at) = soonest_expiry {
        // Countdowns tick once a second; nothing else repaints an idle window.
        let left_ms = at.saturating_sub(now_ms);
        let next = if left_ms % 1000 == 0 { 1000 } else { left_ms % 1000 };
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(next.max(50)));
    }
}

/// Consecutive messages from one sender within a few minutes share one name line.
fn starts_group(messages: &[Message], i: usize) -> bool {
    const GROUP_MS: u64 = 5 * 60 * 1000;
    let m = &messages[i];
    let Some(prev) = i.checked_sub(1).map(|p| &messages[p]) else { return true };
    !matches!(prev.body, Body::Text(_))
        || prev.from != m.from
        || m.at_ms.saturating_sub(prev.at_ms) > GROUP_MS
        || prev.expires_at.is_some() != m.expires_at.is_some()
        || m.unconfirmed
}

fn draw_row(
    ui: &mut Ui,
    msg: &Message,
    header: bool,
    me: &str,
    now_ms: u64,
    utc_offset: Option<FixedOffset>,
    dark: bool,
) {
    match &msg.body {
        Body::Notice { text, warning } => {
            ui.vertical_centered(|ui| {
                let t = RichText::new(text).italics();
                let t = if *warning { t.color(style::DANGER).strong() } else { t.weak() };
                ui.label(t);
            });
        }
        Body::Text(text) => {
            let show_status = header || msg.delivery.is_some() || msg.expires_at.is_some();
            if !show_status {
                // Grouped under the previous row's name line.
            } else if !header {
                // Ours or ephemeral, in a group: keep ticks and countdown without the name.
                ui.horizontal(|ui| status(ui, msg, now_ms));
            } else {
                ui.horizontal(|ui| {
                    let (name, color) = match &msg.from {
                        Some(fp) => (msg.name.as_str(), style::person_color(fp, dark)),
                        None => ("You", style::person_color(me, dark)),
                    };
                    ui.label(RichText::new(name).strong().color(color));
                    if msg.unconfirmed {
                        ui.label(RichText::new("⚠ unconfirmed key").small().strong().color(style::DANGER))
                            .on_hover_text(
                                "This key took a name that belonged to someone else. Until you accept it in the \
                                 fingerprint dialog, these are not your friend's words.",
                            );
                    }
                    ui.label(RichText::new(format_time(msg.at_ms, now_ms, utc_offset)).small().weak());
                    status(ui, msg, now_ms);
                });
            }
            let body = RichText::new(text.as_str());
            let body = if msg.unconfirmed { body.italics().color(style::DANGER) } else { body };
            let resp = ui.add(egui::Label::new(body).wrap().selectable(true));
            resp.context_menu(|ui| {
                if ui.button("Copy text").clicked() {
                    ui.ctx().copy_text(text.clone());
                    ui.close();
                }
            });
        }
    }
}

fn status(ui: &mut Ui, msg: &Message, now_ms: u64) {
    if let Some(d) = &msg.delivery {
        delivery_ticks(ui, d);
    }
    if let Some(at) = msg.expires_at {
        ui.label(
            RichText::new(format!("⏱ {}", countdown(at.saturating_sub(now_ms)))).small().color(style::WARN),
        )
        .on_hover_text("Disappears on every device when this runs out");
    }
}

fn delivery_ticks(ui: &mut Ui, d: &Delivery) {
    match d {
        Delivery::Sending => {
            ui.label(RichText::new("🕓").small().weak()).on_hover_text("Sending");
        }
        Delivery::Sent { recipients, delivered } => {
            let (text, hint) = if *recipients == 0 {
                ("✓".to_string(), "Sent; nobody else is in the room".to_string())
            } else if delivered.len() >= *recipients {
                ("✓✓".to_string(), format!("Delivered to all {recipients}"))
            } else if delivered.is_empty() {
                ("✓".to_string(), "Sent; waiting for delivery".to_string())
            } else {
                (
                    format!("✓ {}/{}", delivered.len(), recipients),
                    format!("Delivered to {} of {}", delivered.len(), recipients),
                )
            };
            let color = if *recipients > 0 && delivered.len() >= *recipients {
                style::OK
            } else {
                ui.visuals().weak_text_color()
            };
            ui.label(RichText::new(text).small().color(color)).on_hover_text(hint);
        }
        Delivery::Failed { reason } => {
            ui.label(RichText::new("⚠ not sent").small().color(style::DANGER)).on_hover_text(reason);
        }
    }
}

/// `4m 05s`, `1h 02m`, `2d 3h`.
pub fn countdown(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `14:05` today, `Mar 3 14:05` otherwise.
pub fn format_time(at_ms: u64, now_ms: u64, utc_offset: Option<FixedOffset>) -> String {
    let fmt = |at: DateTime<FixedOffset>, now: DateTime<FixedOffset>| {
        if at.date_naive() == now.date_naive() {
            at.format("%H:%M").to_string()
        } else {
            at.format("%b %-d %H:%M").to_string()
        }
    };
    let (Some(at), Some(now)) =
        (DateTime::from_timestamp_millis(at_ms as i64), DateTime::from_timestamp_millis(now_ms as i64))
    else {
        return String::new();
    };
    match utc_offset {
        Some(off) => fmt(at.with_timezone(&off), now.with_timezone(&off)),
        None => {
            let at = Local.from_utc_datetime(&at.naive_utc());
            let now = Local.from_utc_datetime(&now.naive_utc());
            fmt(at.fixed_offset(), now.fixed_offset())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_of(n: usize) -> Room {
        let mut room = Room::default();
        for i in 0..n {
            room.push(Message {
                id: Some(format!("m{i}")),
                from: None,
                name: String::new(),
                body: Body::Text(format!("message {i}")),
                at_ms: 0,
                expires_at: None,
                delivery: None,
                tag: None,
                newlines: 0,
                seq: 0,
                unconfirmed: false,
            });
        }
        room
    }

    #[test]
    fn measured_rows_follow_their_messages_when_others_go_and_come() {
        let mut room = room_of(5);
        let mut rows = Rows::default();
        rows.align(&room.messages);
        for (i, row) in rows.rows.iter_mut().enumerate() {
            row.measured = Some((100.0, i as f32));
        }
        // Messages 1 and 3 expire, two new ones arrive.
        room.messages.retain(|m| m.seq != 1 && m.seq != 3);
        let extra = room_of(2).messages;
        for m in extra {
            room.push(m);
        }
        rows.align(&room.messages);
        let got: Vec<(u64, Option<f32>)> =
            rows.rows.iter().map(|r| (r.seq, r.measured.map(|m| m.1))).collect();
        assert_eq!(got, [(0, Some(0.0)), (2, Some(2.0)), (4, Some(4.0)), (5, None), (6, None)]);
        // Nothing changed: nothing moves.
        rows.align(&room.messages);
        assert_eq!(rows.rows.len(), 5);
        room.messages.clear();
        rows.align(&room.messages);
        assert!(rows.rows.is_empty());
    }

    #[test]
    fn rows_are_found_by_position_and_only_changed_ones_are_placed_again() {
        let mut room = room_of(1000);
        let mut rows = Rows::default();
        rows.align(&room.messages);
        rows.place(300.0, |_| 10.0);
        let step = 10.0 + GAP;
        assert_eq!(rows.tops[1000], 1000.0 * step);
        assert_eq!(rows.first_below(0.0), 0);
        assert_eq!(rows.first_below(step * 499.5), 499);
        assert_eq!(rows.first_below(f32::MAX), 1000);
        // A row drawn taller than estimated moves the rows after it, not those before.
        assert!(rows.measured(500, 300.0, 20.0));
        assert!(!rows.measured(500, 300.0, 20.0), "the same height twice is no change");
        assert_eq!(rows.valid, 500);
        rows.place(300.0, |i| {
            assert!(i > 500, "rows up to 500 keep their places");
            10.0
        });
        assert_eq!(rows.tops[1000], 1000.0 * step + 10.0);
        // Appending places only the new rows (and the one before them, whose group may end).
        room.push(room_of(1).messages.remove(0));
        rows.align(&room.messages);
        assert_eq!(rows.valid, 999);
        let calls = std::cell::Cell::new(0);
        rows.place(300.0, |_| {
            calls.set(calls.get() + 1);
            10.0
        });
        assert_eq!(calls.get(), 2);
        // Another width: everything is placed again.
        rows.place(200.0, |_| 10.0);
        assert_eq!(rows.tops[1001], 1001.0 * step);
    }

    #[test]
    fn countdowns_read_naturally() {
        assert_eq!(countdown(0), "0s");
        assert_eq!(countdown(1), "1s");
        assert_eq!(countdown(59_000), "59s");
        assert_eq!(countdown(65_000), "1m 05s");
        assert_eq!(countdown(3_600_000 + 120_000), "1h 02m");
        assert_eq!(countdown(2 * 86_400_000 + 3 * 3_600_000), "2d 3h");
    }

    #[test]
    fn times_show_the_date_only_when_not_today() {
        let utc = FixedOffset::east_opt(0);
        let day = 1_763_856_000_000u64; // 2025-11-23 00:00 UTC
        assert_eq!(format_time(day + 14 * 3_600_000 + 5 * 60_000, day + 20 * 3_600_000, utc), "14:05");
        assert_eq!(format_time(day - 3_600_000, day + 3_600_000, utc), "Nov 22 23:00");
    }
}
