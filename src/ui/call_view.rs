//! Calls in the window: the Call button in the top bar, a banner for a call that rings, and
//! while we are in one a bar with who is in it (a ring that lights with each voice), mute,
//! deafen and hang up, and what the media layer said about missing devices.

use egui::{Color32, RichText, Ui};

use super::actions::{Actions, Frame};
use super::call_grid::SPEAKING_DB;
use super::model::CallPhase;
use super::style;
use super::view::ViewState;
use crate::core::{ClientCommand, LinkKind};

/// The top bar's button for the room on screen: start, join, or leave its call.
pub fn call_button(ui: &mut Ui, f: &Frame, room: &str, out: &mut Actions) {
    let online = matches!(f.model.connection, Some(super::model::Connection::Online));
    let phase = f.model.calls.get(room).map(|c| c.phase);
    let (label, hover) = match phase {
        Some(CallPhase::Joined) => ("📞 Leave call", "Hang up"),
        Some(CallPhase::Ringing | CallPhase::Running) => {
            ("📞 Join call", "Join the call running in this room")
        }
        None => ("📞 Call", "Start a call with everyone in this room"),
    };
    let button = ui.add_enabled(online, egui::Button::new(label)).on_hover_text(hover);
    let button = button.on_disabled_hover_text("Calls need the hub: reconnecting…");
    if button.clicked() {
        match phase {
            Some(CallPhase::Joined) => out.command(ClientCommand::Hangup),
            _ => out.command(ClientCommand::Call { room: room.to_string() }),
        }
    }
}

/// A banner for each call that rings here: who calls, Accept and Decline.
pub fn ringing_banners(ui: &mut Ui, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    for (room, call) in f.model.calls.iter().filter(|(_, c)| c.phase == CallPhase::Ringing) {
        let names: Vec<String> = call.members.iter().map(|fp| f.model.name_of(fp)).collect();
        egui::Panel::top(("ringing", room)).show(ui, |ui| {
            style::callout(ui, style::OK, |ui| {
                ui.horizontal(|ui| {
                    let verb = if names.len() == 1 { "is" } else { "are" };
                    let text = format!("📞 {} {verb} calling in #{room}", names.join(", "));
                    ui.label(RichText::new(text).strong());
                    if ui.button("Accept").clicked() {
                        view.room = Some(room.clone());
                        out.command(ClientCommand::Call { room: room.clone() });
                    }
                    if ui.button("Decline").clicked() {
                        out.command(ClientCommand::DeclineCall { room: room.clone() });
                    }
                });
            });
        });
    }
}

/// While we are in a call: its people, our controls, and any device problem in words.
pub fn call_bar(ui: &mut Ui, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    let Some((room, call)) = f.model.joined_call() else { return };
    egui::Panel::top("call_bar").show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("In a call in #{room}")).strong());
            if call.members.is_empty() {
                ui.label(RichText::new("waiting for others to join…").weak());
            }
            for fp in &call.members {
                let stats = f.model.call_media.stats.get(fp);
                let speaking = stats.is_some_and(|s| s.level_db > SPEAKING_DB);
                let colour = if speaking { style::OK } else { Color32::GRAY };
                let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
                ui.painter().circle_stroke(rect.center(), 6.0, egui::Stroke::new(2.5, colour));
                let name = f.model.name_of(fp);
                let hover = match stats {
                    Some(s) => format!(
                        "{name}: {} dB, {} ms in the jitter buffer, {} lost ({} recovered)",
                        s.level_db, s.jitter_buffer_ms, s.lost, s.recovered_fec
                    ),
                    None => format!("{name}: no audio yet"),
                };
                // Click a name for that person's volume.
                ui.menu_button(name, |ui| {
                    let volume = view.volumes.entry(fp.clone()).or_insert(100);
                    let slider = egui::Slider::new(volume, 0..=200).suffix(" %").text("volume");
                    if ui.add(slider).changed() {
                        out.command(ClientCommand::Volume { peer: fp.clone(), percent: *volume });
                    }
                })
                .response
                .on_hover_text(hover);
                // The hub never carries a call: without a link, this person hears nothing.
                let via_hub = f.model.peers.get(fp).is_none_or(|p| p.link == LinkKind::Hub);
                if via_hub {
                    ui.label(RichText::new("⚠ no direct link").color(style::WARN)).on_hover_text(
                        "Calls travel only on a direct or relayed link, never through the hub, and \
                         none works with this person yet (a firewall or NAT in the way). A TURN \
                         server in Settings relays the call when no direct path does.",
                    );
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button(RichText::new("Hang up").color(style::DANGER)).clicked() {
                    out.command(ClientCommand::Hangup);
                }
                let stats = ui.selectable_label(view.video_stats, "📊 Stats");
                if stats
                    .on_hover_text("Resolution, frame rate, bitrate, round trip and loss on each tile")
                    .clicked()
                {
                    view.video_stats = !view.video_stats;
                }
                let deafen = if view.deafened { "🔇 Undeafen" } else { "🔈 Deafen" };
                if ui.selectable_label(view.deafened, deafen).on_hover_text("Stop hearing the call").clicked()
                {
                    view.deafened = !view.deafened;
                    out.command(ClientCommand::Deafen { on: view.deafened });
                }
                let mute = if view.muted { "Unmute mic" } else { "Mute mic" };
                if ui
                    .selectable_label(view.muted, mute)
                    .on_hover_text("Stop sending your microphone")
                    .clicked()
                {
                    view.muted = !view.muted;
                }
                let held = sync_mute(ui, f, view, out);
                if let (Some(held), Some(key)) = (held, f.settings.push_to_talk_key()) {
                    let hint = "Push to talk is on in Settings: the call hears you only while you \
                                hold the key in this window";
                    match held && !view.muted {
                        true => ui.label(RichText::new("● talking").color(style::OK)).on_hover_text(hint),
                        false => ui
                            .label(RichText::new(format!("hold {} to talk", key.name())).weak())
                            .on_hover_text(hint),
                    };
                }
            });
        });
        for problem in &f.model.call_media.problems {
            ui.colored_label(style::WARN, problem);
        }
        ui.add_space(2.0);
    });
}

/// Tells the core whether our microphone sends: not while muted, and with push-to-talk only
/// while its key is held in this window (a window that loses focus stops sending, as the key's
/// release may never reach it). A command goes only when that changes. Returns whether
/// push-to-talk's key is held, if push-to-talk is on.
fn sync_mute(ui: &Ui, f: &Frame, view: &mut ViewState, out: &mut Actions) -> Option<bool> {
    let held = f.settings.push_to_talk_key().map(|key| ui.input(|i| i.focused && i.key_down(key)));
    let muted = view.muted || held == Some(false);
    if view.sent_muted.unwrap_or(false) != muted {
        view.sent_muted = Some(muted);
        out.command(ClientCommand::Mute { on: muted });
    }
    held
}
