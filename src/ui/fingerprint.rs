//! The fingerprint dialog: how two people check that nobody sits between them.
//!
//! They compare the safety number (the same for both, for as long as both keep their
//! identities) or this session's emoji, in person or on a call, and mark each other verified.
//! After an identity change it explains what that means and asks for an acknowledgement
//! before anything is sent to that peer again.

use egui::{RichText, Ui};

use super::actions::{Actions, Frame};
use super::model::Peer;
use super::style;
use super::view::ViewState;
use crate::core::{ClientCommand, SAS_EMOJI};

enum Choice {
    Verify(bool),
    Acknowledge,
    Close,
}

pub fn dialog(ctx: &egui::Context, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    let Some(fp) = view.dialog.clone() else { return };
    let Some(peer) = f.model.peers.get(&fp) else {
        view.dialog = None;
        return;
    };
    let mine = &f.model.me_fingerprint;
    let mut action = None;
    let modal = egui::Modal::new(egui::Id::unique("fingerprint_dialog")).show(ctx, |ui| {
        ui.set_width(520.0);
        ui.heading(format!("Verify {}", peer.name));
        ui.add_space(4.0);
        if peer.identity_changed {
            changed_warning(ui, peer, &mut action);
            ui.add_space(6.0);
        }
        if !peer.secure {
            ui.label(
                RichText::new("Setting up the encrypted session… the numbers appear when it is ready.")
                    .weak(),
            );
        } else {
            body(ui, peer);
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if peer.verified {
                ui.label(RichText::new("🛡 Verified").color(style::OK).strong());
                if ui.button("Remove verification").clicked() {
                    action = Some(Choice::Verify(false));
                }
            } else {
                ui.label(RichText::new("Not verified").weak());
                if ui
                    .add_enabled(peer.secure, egui::Button::new("Mark as verified"))
                    .on_hover_text("Only after the numbers or emoji matched on both screens")
                    .clicked()
                {
                    action = Some(Choice::Verify(true));
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Close").clicked() {
                    action = Some(Choice::Close);
                }
            });
        });
        ui.add_space(4.0);
        ui.collapsing("Fingerprints", |ui| {
            ui.label(format!("{}:", peer.name));
            style::copy_field(ui, &peer.fingerprint, true);
            ui.label("You:");
            style::copy_field(ui, mine, true);
        });
    });
    if modal.should_close() && action.is_none() {
        action = Some(Choice::Close);
    }
    match action {
        Some(Choice::Verify(verified)) => out.command(ClientCommand::Verify { peer: fp, verified }),
        Some(Choice::Acknowledge) => out.command(ClientCommand::AcknowledgeChange { peer: fp }),
        Some(Choice::Close) => view.dialog = None,
        None => {}
    }
}

fn changed_warning(ui: &mut Ui, peer: &Peer, action: &mut Option<Choice>) {
    style::callout(ui, style::DANGER, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(format!("⚠ {}'s identity changed", peer.name)).color(style::DANGER).strong());
        ui.label(format!(
            "The key {name} uses now is not the one you knew. This happens when {name} reinstalls \
             Kith or moves to a new device — and it is also exactly what someone impersonating \
             {name} would look like.",
            name = peer.name
        ));
        if let Some(old) = &peer.replaced {
            ui.label(RichText::new(format!("Previous fingerprint: {old}")).small().monospace());
        }
        ui.label(
            "Messages to this room are paused. Compare the safety number below with them (in \
             person or on a call), then mark them verified — or acknowledge the change to send \
             without verifying.",
        );
        if ui.button("I understand, send to the new identity").clicked() {
            *action = Some(Choice::Acknowledge);
        }
    });
}

fn body(ui: &mut Ui, peer: &Peer) {
    ui.label(format!(
        "Compare these with {} — in person or on a call. If they match on both screens, \
         nobody is listening in.",
        peer.name
    ));
    ui.add_space(6.0);
    ui.label(RichText::new("Safety number").strong());
    egui::Frame::new().fill(ui.visuals().extreme_bg_color).corner_radius(6.0).inner_margin(10.0).show(
        ui,
        |ui| {
            let groups: Vec<&str> = peer.safety_number.split_whitespace().collect();
            egui::Grid::new("safety_number").spacing([18.0, 6.0]).show(ui, |ui| {
                for (i, g) in groups.iter().enumerate() {
                    ui.label(RichText::new(*g).monospace().size(18.0));
                    if i % 4 == 3 {
                        ui.end_row();
                    }
                }
            });
        },
    );
    if ui.small_button("📋 Copy safety number").clicked() {
        ui.ctx().copy_text(peer.safety_number.clone());
    }
    ui.add_space(8.0);
    ui.label(RichText::new("Or compare this session's emoji").strong());
    let emoji: Vec<&str> = peer.sas_emoji.split_whitespace().collect();
    ui.horizontal_wrapped(|ui| {
        for e in &emoji {
            let word = SAS_EMOJI.iter().find(|(g, _)| g == e).map(|(_, w)| *w).unwrap_or("");
            ui.vertical(|ui| {
                ui.set_width(62.0);
                ui.vertical_centered(|ui| {
                    ui.label(RichText::new(*e).size(30.0));
                    ui.label(RichText::new(word).small());
                });
            });
        }
    });
    ui.label(RichText::new(format!("Digits: {}", peer.sas_digits)).monospace());
    ui.label(
        RichText::new(
            "The emoji change with every session; the safety number stays while both keep their identities.",
        )
        .small()
        .weak(),
    );
}
