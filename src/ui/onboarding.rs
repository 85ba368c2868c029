//! First run: pick a display name, create the identity, see its fingerprint.

use egui::{RichText, Ui};

use super::app::{KithApp, Screen};
use super::connect::ConnectForm;
use super::style;
use crate::protocol::identity::IdentityKey;
use crate::protocol::wire::sanitize_name;

#[derive(Default)]
pub struct Onboarding {
    pub name: String,
    pub error: Option<String>,
    /// Set once the identity exists: its fingerprint, grouped.
    pub fingerprint: Option<String>,
    /// The name field asked for keyboard focus once (asking every frame repaints forever).
    pub focused_once: bool,
}

pub fn show(app: &mut KithApp, ui: &mut Ui) {
    let Screen::Onboarding(state) = &mut app.screen else { return };
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
                            .char_limit(crate::protocol::wire::MAX_NAME),
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
        create_identity(app);
    }
    if done {
        app.screen = Screen::Connect(ConnectForm::from_settings(&app.settings));
    }
}

fn create_identity(app: &mut KithApp) {
    let Screen::Onboarding(state) = &mut app.screen else { return };
    let Some(name) = sanitize_name(state.name.trim()) else {
        state.error = Some("Use 1 to 64 characters, without control characters.".into());
        return;
    };
    let Some(profile) = &app.profile else { return };
    match profile.identity() {
        Ok(keys) => {
            state.error = None;
            state.fingerprint = Some(IdentityKey::from(&keys.public).fingerprint().grouped());
            state.name = name.clone();
            app.settings.display_name = Some(name);
            app.save_settings();
        }
        Err(e) => state.error = Some(e.to_string()),
    }
}
