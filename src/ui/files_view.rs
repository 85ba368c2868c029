//! Files in the window: the 📎 picker, files dropped onto the window, and the transfers strip
//! above the composer (offers to accept, progress bars, thumbnails, where a file was saved).

use std::path::PathBuf;
use std::time::Duration;

use egui::{RichText, Ui};

use super::actions::{Actions, Frame, Recipients, UiAction};
use super::files::{Transfer, TransferState, human_bytes};
use super::style;
use super::thumbnails::{self, Thumbnails};
use crate::core::ClientCommand;

/// Files dragged over the window get a hint; dropped ones go to everyone in the room.
pub fn drop_target(ctx: &egui::Context, room: &str, out: &mut Actions) {
    let (hovering, dropped) = ctx.input(|i| (!i.raw.hovered_files.is_empty(), i.raw.dropped_files.clone()));
    if hovering {
        let screen = ctx.content_rect();
        let painter =
            ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("file_drop")));
        painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(160));
        painter.text(
            screen.center(),
            egui::Align2::CENTER_CENTER,
            format!("Drop to send to everyone in #{room}"),
            egui::FontId::proportional(22.0),
            egui::Color32::WHITE,
        );
    }
    if !dropped.is_empty() {
        let paths: Vec<PathBuf> =
            dropped.into_iter().map(|f| f.path().to_path_buf()).filter(|p| p.is_absolute()).collect();
        out.push(UiAction::SendFiles { to: Recipients::Room(room.to_string()), paths });
    }
}

/// The strip above the composer: every transfer still relevant, newest at the bottom.
pub fn strip(ui: &mut Ui, f: &Frame, thumbs: &mut Thumbnails, out: &mut Actions) {
    let files = &f.model.files;
    if files.list.is_empty() {
        return;
    }
    egui::Panel::bottom("transfers").resizable(false).show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.label(RichText::new("FILES").small().strong().weak());
            if files.list.iter().any(Transfer::finished) && ui.small_button("Clear finished").clicked() {
                out.push(UiAction::ClearFinishedFiles);
            }
        });
        egui::ScrollArea::vertical().max_height(190.0).min_scrolled_height(190.0).stick_to_bottom(true).show(
            ui,
            |ui| {
                for t in &files.list {
                    transfer_row(ui, f, thumbs, t, out);
                }
            },
        );
        ui.add_space(2.0);
    });
}

fn transfer_row(ui: &mut Ui, f: &Frame, thumbs: &mut Thumbnails, t: &Transfer, out: &mut Actions) {
    let who = f.model.peers.get(&t.peer).map_or_else(|| t.peer.chars().take(8).collect(), |p| p.name.clone());
    let ctx = ui.ctx().clone();
    let thumb = match (&t.path, t.incoming, &t.state) {
        // A received file is only looked at once it is whole and its hash checked.
        (Some(path), false, _) | (Some(path), true, TransferState::Done) if thumbnails::is_image(&t.name) => {
            thumbs.get(&ctx, &t.id, std::path::Path::new(path))
        }
        _ => None,
    };
    ui.horizontal(|ui| {
        ui.set_min_height(thumb.as_ref().map_or(36.0, |_| 52.0));
        match &thumb {
            Some(tex) => {
                ui.add(egui::Image::new(tex).max_size(egui::vec2(48.0, 48.0)).corner_radius(4.0));
            }
            None => {
                ui.label(RichText::new(if t.incoming { "⬇" } else { "⬆" }).size(22.0));
            }
        }
        ui.vertical(|ui| {
            ui.horizontal(|ui| {
                ui.label(RichText::new(&t.name).strong());
                let dir = if t.incoming { format!("from {who}") } else { format!("to {who}") };
                ui.label(RichText::new(format!("{dir} · {}", human_bytes(t.size))).weak());
            });
            status_line(ui, f, t, &who, out);
        });
    });
}

fn status_line(ui: &mut Ui, f: &Frame, t: &Transfer, who: &str, out: &mut Actions) {
    let id = t.id.clone();
    match &t.state {
        TransferState::Preparing => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new("Checking the file…").weak());
            });
        }
        TransferState::Offered if t.incoming => {
            ui.horizontal(|ui| {
                if ui.button("Accept").on_hover_text(save_hint(f)).clicked() {
                    out.command(ClientCommand::AcceptFile { id: id.clone() });
                }
                if ui.button("Decline").clicked() {
                    out.command(ClientCommand::DeclineFile { id: id.clone() });
                }
            });
        }
        TransferState::Offered => {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Waiting for {who} to accept")).weak());
                if ui.small_button("Cancel").clicked() {
                    out.command(ClientCommand::CancelFile { id: id.clone() });
                }
            });
        }
        TransferState::Moving => {
            ui.horizontal(|ui| {
                let mut text = format!("{:.0} %", t.fraction() * 100.0);
                if let Some(rate) = t.rate(f.now_ms) {
                    text.push_str(&format!(" · {}/s", human_bytes(rate as u64)));
                }
                ui.add(egui::ProgressBar::new(t.fraction()).desired_width(260.0).text(text));
                if ui.small_button("Cancel").clicked() {
                    out.command(ClientCommand::CancelFile { id: id.clone() });
                }
            });
            // The bar is redrawn as progress events arrive; the rate also needs the clock.
            ui.ctx().request_repaint_after(Duration::from_millis(500));
        }
        TransferState::Done if t.incoming => {
            ui.horizontal(|ui| {
                ui.label(RichText::new("✔ Saved, checksum verified:").color(style::OK));
                if let Some(path) = &t.path {
                    style::copy_field(ui, path, false);
                }
            });
        }
        TransferState::Done => {
            ui.label(RichText::new(format!("✔ Delivered, {who} verified the checksum")).color(style::OK));
        }
        TransferState::Failed { reason } => {
            ui.label(RichText::new(format!("✖ {reason}")).color(style::DANGER));
        }
    }
}

fn save_hint(f: &Frame) -> String {
    match f.settings.downloads.as_deref().filter(|d| !d.trim().is_empty()) {
        Some(dir) => format!("Saved in {dir}"),
        None => "Saved in your downloads folder (change it in Settings)".into(),
    }
}
