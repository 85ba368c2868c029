//! The Settings dialog, and the question asked when the settings file is damaged.

use egui::RichText;

use super::actions::{Actions, Frame, UiAction};
use super::settings::{DEFAULT_PUSH_TO_TALK_KEY, PUSH_TO_TALK_KEYS, Theme};
use super::style;
use super::view::ViewState;
use crate::core::{ClientCommand, sanitize_name};

/// Edits a copy of the settings; a change goes back as [`UiAction::Settings`].
pub fn dialog(ctx: &egui::Context, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    let mut open = true;
    let mut edited = f.settings.clone();
    // Clicks save at once; typing (and dragging a number) saves when the field lets go or the
    // dialog closes, so an fsync does not follow every keystroke (D21).
    let mut changed = false;
    let mut typed = false;
    egui::Window::new("Settings").open(&mut open).collapsible(false).default_width(420.0).show(ctx, |ui| {
        let s = &mut edited;
        egui::Grid::new("settings_grid").num_columns(2).spacing([16.0, 10.0]).show(ui, |ui| {
            let l = ui.label("Display name");
            // Edited in a draft so the field can be emptied while typing a new name.
            let draft = view.name_draft.get_or_insert_with(|| s.display_name.clone().unwrap_or_default());
            let edit = ui.add(egui::TextEdit::singleline(draft).desired_width(220.0)).labelled_by(l.id);
            if edit.changed()
                && let Some(clean) = sanitize_name(draft)
            {
                s.display_name = Some(clean);
                typed = true;
            }
            changed |= edit.lost_focus();
            ui.end_row();
            ui.label("");
            ui.label(RichText::new("Friends see a new name the next time you connect.").small().weak());
            ui.end_row();

            let l = ui.label("Theme");
            egui::ComboBox::from_id_salt("theme")
                .selected_text(s.theme.label())
                .show_ui(ui, |ui| {
                    for t in Theme::ALL {
                        changed |= ui.selectable_value(&mut s.theme, t, t.label()).changed();
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();

            let l = ui.label("Default hub");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut s.default_hub)
                        .hint_text("host:port")
                        .desired_width(220.0),
                )
                .labelled_by(l.id);
            typed |= edit.changed();
            changed |= edit.lost_focus();
            ui.end_row();

            ui.label("Notifications");
            changed |= ui
                .checkbox(&mut s.notifications, "Notify me of messages while Kith is in the background")
                .changed();
            ui.end_row();

            let l = ui.label("STUN servers");
            let mut text = s.stun_servers.join("\n");
            let edit = ui
                .add(egui::TextEdit::multiline(&mut text).desired_rows(2).desired_width(220.0))
                .labelled_by(l.id);
            if edit.changed() {
                s.stun_servers =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                typed = true;
            }
            changed |= edit.lost_focus();
            ui.end_row();

            let l = ui.label("TURN relays");
            ui.vertical(|ui| {
                let mut text = s.turn_servers.join("\n");
                let edit = ui
                    .add(
                        egui::TextEdit::multiline(&mut text)
                            .desired_rows(2)
                            .desired_width(220.0)
                            .hint_text("turn:USER:PASS@HOST:PORT"),
                    )
                    .labelled_by(l.id);
                if edit.changed() {
                    s.turn_servers =
                        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                    typed = true;
                }
                changed |= edit.lost_focus();
                for t in &s.turn_servers {
                    if let Err(e) = t.parse::<crate::core::TurnServer>() {
                        ui.colored_label(style::DANGER, e);
                    }
                }
                for p in &f.model.ice_problems {
                    ui.label(RichText::new(p).small().weak());
                }
                ui.label(RichText::new("Used by the next connection.").small().weak());
            });
            ui.end_row();

            let l = ui.label("Save files in");
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    let mut dir = s.downloads.clone().unwrap_or_default();
                    let edit = ui
                        .add(
                            egui::TextEdit::singleline(&mut dir)
                                .hint_text("your downloads folder")
                                .desired_width(220.0),
                        )
                        .labelled_by(l.id);
                    if edit.changed() {
                        s.downloads = Some(dir).filter(|d| !d.trim().is_empty());
                        typed = true;
                    }
                    changed |= edit.lost_focus();
                    if ui.add_enabled(!f.picker_open, egui::Button::new("Choose…")).clicked() {
                        out.push(UiAction::PickDownloadsFolder);
                    }
                });
                ui.horizontal(|ui| {
                    ui.label("Accept files up to");
                    let drag =
                        ui.add(egui::DragValue::new(&mut s.max_file_mib).range(1..=1_048_576).suffix(" MiB"));
                    typed |= drag.changed();
                    changed |= drag.drag_stopped() || drag.lost_focus();
                });
                ui.label(
                    RichText::new("Larger offers are declined without asking. Used by the next connection.")
                        .small()
                        .weak(),
                );
            });
            ui.end_row();
        });
        ui.separator();
        ui.label(RichText::new("Audio and video").strong());
        // The meter needs the microphone open, in a call or not (nothing is sent outside one).
        if !view.mic_testing {
            view.mic_testing = true;
            out.command(ClientCommand::MicTest { on: true });
        }
        ctx.request_repaint_after(METER_REFRESH);
        if f.model.devices.is_none() && !view.devices_asked {
            view.devices_asked = true;
            out.command(ClientCommand::Devices);
        }
        let none = super::model::DeviceLists::default();
        let lists = f.model.devices.as_ref().unwrap_or(&none);
        egui::Grid::new("devices_grid").num_columns(2).spacing([16.0, 8.0]).show(ui, |ui| {
            for (label, choice, devices, is_mic) in [
                ("Microphone", &mut s.microphone, &lists.inputs, true),
                ("Speaker", &mut s.speaker, &lists.outputs, false),
            ] {
                let l = ui.label(label);
                let shown = match choice.as_deref() {
                    None => "System default".to_string(),
                    Some(name) => {
                        devices.iter().find(|(n, _)| n == name).map_or(name.to_string(), |(_, d)| d.clone())
                    }
                };
                let before = choice.clone();
                egui::ComboBox::from_id_salt(label)
                    .selected_text(shown)
                    .width(220.0)
                    .show_ui(ui, |ui| {
                        ui.selectable_value(choice, None, "System default");
                        for (name, description) in devices {
                            ui.selectable_value(choice, Some(name.clone()), description).on_hover_text(name);
                        }
                    })
                    .response
                    .labelled_by(l.id);
                if *choice != before {
                    changed = true;
                    let name = choice.clone().unwrap_or_else(|| "default".into());
                    let (mic, speaker) = if is_mic { (Some(name), None) } else { (None, Some(name)) };
                    out.command(ClientCommand::UseDevices { mic, speaker });
                }
                ui.end_row();
            }
            let l = ui.label("Microphone level");
            mic_meter(ui, f, l.id);
            ui.end_row();

            let l = ui.label("Push to talk");
            ui.horizontal(|ui| {
                changed |= ui
                    .checkbox(&mut s.push_to_talk, "In calls, send my microphone only while I hold")
                    .changed();
                let key = s.push_to_talk_key().unwrap_or(DEFAULT_PUSH_TO_TALK_KEY);
                ui.add_enabled_ui(s.push_to_talk, |ui| {
                    egui::ComboBox::from_id_salt("push_to_talk_key")
                        .selected_text(key.name())
                        .show_ui(ui, |ui| {
                            for k in PUSH_TO_TALK_KEYS {
                                if ui.selectable_label(k == key, k.name()).clicked() {
                                    s.push_to_talk_key = k.name().to_string();
                                    changed = true;
                                }
                            }
                        })
                        .response
                        .labelled_by(l.id);
                });
            });
            ui.end_row();

            let l = ui.label("Camera");
            if camera_picker(ui, s, &lists.cameras, l.id) {
                changed = true;
                out.command(ClientCommand::UseCamera {
                    camera: s.camera.clone().unwrap_or_else(|| "default".into()),
                    size: Some(s.camera_size.clone()),
                    fps: Some(s.camera_fps),
                });
            }
            ui.end_row();
        });
        ui.horizontal(|ui| {
            let before = (s.echo_cancel, s.noise_suppression, s.auto_gain);
            ui.checkbox(&mut s.echo_cancel, "Echo cancellation");
            ui.checkbox(&mut s.noise_suppression, "Noise suppression");
            ui.checkbox(&mut s.auto_gain, "Automatic gain");
            if (s.echo_cancel, s.noise_suppression, s.auto_gain) != before {
                changed = true;
                out.command(ClientCommand::AudioProcessing {
                    echo_cancel: s.echo_cancel,
                    noise_suppression: s.noise_suppression,
                    auto_gain: s.auto_gain,
                });
            }
        });
        if f.model.devices.is_some() && lists.inputs.is_empty() && lists.outputs.is_empty() {
            ui.label(RichText::new("The sound system lists no devices: calls use none.").small().weak());
        }
        if f.model.devices.is_some() && lists.cameras.is_empty() {
            ui.label(RichText::new("No camera found: calls go on without your video.").small().weak());
        }
        ui.label(
            RichText::new(
                "A call switches at once. The test pattern stands in for a camera where there is none.",
            )
            .small()
            .weak(),
        );
        if let Some(e) = f.settings_error {
            ui.colored_label(style::DANGER, format!("Settings could not be saved: {e}"));
        }
    });
    view.settings_dirty |= typed;
    let save = changed || (!open && view.settings_dirty);
    if save {
        view.settings_dirty = false;
    }
    if save || edited != *f.settings {
        out.push(UiAction::Settings { settings: Box::new(edited), save });
    }
    if !open {
        view.settings_open = false;
        view.name_draft = None;
        if view.mic_testing {
            view.mic_testing = false;
            out.command(ClientCommand::MicTest { on: false });
        }
    }
}

/// The cameras that are always there, by the names `--camera` uses, with what the picker
/// shows; the system's webcams go between the first and the others.
const CAMERAS: [(Option<&str>, &str); 3] = [
    (None, "System camera"),
    (Some("test-pattern"), "Test pattern (moving bars)"),
    (Some("none"), "No camera"),
];
const CAMERA_SIZES: [&str; 4] = ["1280x720", "960x540", "640x360", "320x180"];
const CAMERA_RATES: [u32; 3] = [15, 24, 30];

/// The camera (the fixed choices and the system's `webcams`, each `(name, description)`), its
/// size and its frame rate; true when one changed.
fn camera_picker(
    ui: &mut egui::Ui,
    s: &mut crate::ui::settings::Settings,
    webcams: &[(String, String)],
    label: egui::Id,
) -> bool {
    let before = (s.camera.clone(), s.camera_size.clone(), s.camera_fps);
    let (first, rest) = CAMERAS.split_at(1);
    let choices: Vec<(Option<&str>, &str)> = first
        .iter()
        .copied()
        .chain(webcams.iter().map(|(n, d)| (Some(n.as_str()), d.as_str())))
        .chain(rest.iter().copied())
        .collect();
    ui.horizontal(|ui| {
        let shown = choices
            .iter()
            .find(|(name, _)| *name == s.camera.as_deref())
            .map_or_else(|| s.camera.clone().unwrap_or_default(), |(_, text)| text.to_string());
        egui::ComboBox::from_id_salt("Camera")
            .selected_text(shown)
            .width(200.0)
            .show_ui(ui, |ui| {
                for (name, text) in &choices {
                    ui.selectable_value(&mut s.camera, name.map(str::to_string), *text);
                }
            })
            .response
            .labelled_by(label);
        egui::ComboBox::from_id_salt("camera_size")
            .selected_text(s.camera_size.replace('x', "×"))
            .show_ui(ui, |ui| {
                for size in CAMERA_SIZES {
                    ui.selectable_value(&mut s.camera_size, size.to_string(), size.replace('x', "×"));
                }
            })
            .response
            .on_hover_text("The size your camera sends");
        egui::ComboBox::from_id_salt("camera_fps")
            .selected_text(format!("{} fps", s.camera_fps))
            .show_ui(ui, |ui| {
                for fps in CAMERA_RATES {
                    ui.selectable_value(&mut s.camera_fps, fps, format!("{fps} fps"));
                }
            })
            .response
            .on_hover_text("Frames per second your camera sends");
    });
    (s.camera.clone(), s.camera_size.clone(), s.camera_fps) != before
}

/// The meter's redraw rate while Settings is open: smooth enough to watch a voice.
const METER_REFRESH: std::time::Duration = std::time::Duration::from_millis(50);
/// The meter's scale starts here (dBFS): quieter is silence to the eye.
const METER_FLOOR_DB: f32 = -60.0;
/// Louder than this is close to clipping.
const METER_HOT_DB: f32 = -3.0;

/// The microphone's level as a bar, or in words why there is none.
fn mic_meter(ui: &mut egui::Ui, f: &Frame, label: egui::Id) {
    match f.mic_level_db {
        Some(db) => {
            let fill = ((db - METER_FLOOR_DB) / -METER_FLOOR_DB).clamp(0.0, 1.0);
            let colour = if db > METER_HOT_DB { style::WARN } else { style::OK };
            let bar =
                egui::ProgressBar::new(fill).desired_width(220.0).fill(colour).text(format!("{db:.0} dB"));
            // The bar's own text ("-23 dB") names it for screen readers: a label beside it
            // would hide the number.
            ui.add(bar).on_hover_text("What a call hears from your microphone, after its processing");
        }
        None => {
            let problem = f.model.call_media.problems.iter().rev().find(|p| p.contains("microphone"));
            let text = problem.map_or("Opening the microphone…", String::as_str);
            ui.scope(|ui| {
                ui.set_max_width(360.0);
                ui.add(egui::Label::new(RichText::new(text).small().weak()).wrap()).labelled_by(label);
            });
        }
    }
}

/// Asked once at start when `settings.json` does not parse: reset (keeping the old file
/// aside) or go on with defaults for this run without touching it.
pub fn corrupt_dialog(ctx: &egui::Context, path: &str, reason: &str, out: &mut Actions) {
    let mut reset = false;
    let mut keep = false;
    egui::Modal::new(egui::Id::unique("corrupt_settings")).show(ctx, |ui| {
        ui.set_width(460.0);
        ui.heading("Your settings file is damaged");
        ui.label(format!("{path} could not be read: {reason}"));
        ui.label(
            "Kith is running on default settings and will not write over the file. Reset it to \
             start fresh (the damaged file is kept as settings.json.broken), or keep it to repair \
             it by hand; nothing you change is saved until then.",
        );
        ui.horizontal(|ui| {
            reset = ui.button("Reset to defaults").clicked();
            keep = ui.button("Keep the file for now").clicked();
        });
    });
    if reset {
        out.push(UiAction::ResetSettings);
    } else if keep {
        out.push(UiAction::KeepBrokenSettings);
    }
}
