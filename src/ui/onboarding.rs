//! First run: pick a display name, create the identity, see its fingerprint.

use egui::{RichText, Ui};

use super::actions::{Actions, UiAction};
use super::style;
use crate::core::{MAX_NAME, sanitize_name};

#[derive(Default)]
pub struct Onboarding {
    pub name: String,
    pub error: Option<String>,
    /// Set once the identity exists: its fingerprint, grouped.
    pub fingerprint: Option<String>,
    /// The name field asked for keyboard focus once (asking every frame repaints forever).
    pub focused_once: bool,
}

pub fn show(ui: &mut Ui, state: &mut Onboarding, out: &mut Actions) {
    let mut create = false;
    let mut done = false;
    egui::CentralPanel::default().show(ui, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() * 0.12);
            ui.heading(RichText::new("Welcome to Kith").size(28.0));
            ui.label("Private messages and calls with the people you trust.");
            ui.add_space(24.0);
            match &state.fingerprint {
                None => {
                    let label = ui.label("Choose a display name");
                    let edit = ui.add(
                        egui::TextEdit::singleline(&mut state.name)
                            .hint_text("e.g. Alice")
                            .desired_width(260.0)
                            .char_limit(MAX_NAME),
                    );
                    let edit = edit.labelled_by(label.id);
                    if !std::mem::replace(&mut state.focused_once, true) {
                        edit.request_focus();
                    }
                    ui.label(
                        RichText::new("Friends see this name. You can change it later in Settings.").weak(),
                    );
                    if let Some(e) = &state.error {
                        ui.colored_label(style::DANGER, e);
                    }
                    ui.add_space(8.0);
                    let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    if ui.button("Create my identity").clicked() || enter {
                        create = true;
                    }
                }
                Some(fp) => {
                    ui.label(format!("Your identity is ready, {}.", state.name.trim()));
                    ui.add_space(8.0);
                    ui.label("Your fingerprint");
                    ui.label(RichText::new(fp).monospace().size(18.0));
                    ui.label(
                        RichText::new(
                            "Friends see this fingerprint when they verify you. It stays the same \
                             as long as you keep this profile.",
                        )
                        .weak(),
                    );
                    ui.add_space(12.0);
                    if ui.button("Continue").clicked() {
                        done = true;
                    }
                }
            }
        });
    });
    if create {
        match sanitize_name(state.name.trim()) {
            Some(name) => out.push(UiAction::CreateIdentity { name }),
            None => state.error = Some("Use 1 to 64 characters, without control characters.".into()),
        }
    }
    if done {
        out.push(UiAction::FinishOnboarding);
    }
}

impl Onboarding {
    /// The identity exists: show its fingerprint (grouped) before going on.
    pub fn created(&mut self, name: String, fingerprint: String) {
        self.error = None;
        self.name = name;
        self.fingerprint = Some(fingerprint);
    }
}
