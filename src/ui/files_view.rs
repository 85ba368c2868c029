//! Files in the window: the 📎 picker, files dropped onto the window, and the transfers strip
//! above the composer (offers to accept, progress bars, thumbnails, where a file was saved).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use egui::{RichText, Ui};

use super::app::KithApp;
use super::files::{Transfer, TransferState, human_bytes};
use super::{style, thumbnails};
use crate::protocol::events::ClientCommand;

/// A file dialog that answers faster than a person can click never opened: on Linux without
/// an XDG desktop portal (or zenity), rfd returns "nothing picked" at once.
const NO_DIALOG: Duration = Duration::from_millis(300);

/// Who picked or dropped files go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Everyone in the room with a secure session.
    Room(String),
    /// One person, by fingerprint.
    Peer(String),
}

enum Picked {
    Files {
        to: Recipients,
        paths: Vec<PathBuf>,
    },
    Folder(PathBuf),
    /// The dialog was closed without a choice; `quick` when it never showed.
    Nothing {
        quick: bool,
    },
}

/// Native dialogs run on a thread of their own: on some platforms they block until closed,
/// and the window must keep drawing meanwhile.
pub struct Pickers {
    tx: mpsc::Sender<Picked>,
    rx: mpsc::Receiver<Picked>,
    open: bool,
}

impl Default for Pickers {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Self { tx, rx, open: false }
    }
}

impl Pickers {
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn pick_files(&mut self, ctx: &egui::Context, to: Recipients, title: String) {
        self.spawn(ctx, move || {
            let handles =
                futures::executor::block_on(rfd::AsyncFileDialog::new().set_title(title).pick_files());
            let paths: Vec<PathBuf> =
                handles.unwrap_or_default().iter().map(|h| h.path().to_path_buf()).collect();
            (!paths.is_empty()).then_some(Picked::Files { to, paths })
        });
    }

    pub fn pick_folder(&mut self, ctx: &egui::Context, title: String) {
        self.spawn(ctx, move || {
            let handle =
                futures::executor::block_on(rfd::AsyncFileDialog::new().set_title(title).pick_folder());
            handle.map(|h| Picked::Folder(h.path().to_path_buf()))
        });
    }

    fn spawn(&mut self, ctx: &egui::Context, dialog: impl FnOnce() -> Option<Picked> + Send + 'static) {
        if self.open {
            return;
        }
        let (tx, ctx) = (self.tx.clone(), ctx.clone());
        let spawned = std::thread::Builder::new().name("kith-file-dialog".into()).spawn(move || {
            let started = Instant::now();
            let picked = dialog().unwrap_or(Picked::Nothing { quick: started.elapsed() < NO_DIALOG });
            let _ = tx.send(picked);
            ctx.request_repaint();
        });
        match spawned {
            Ok(_) => self.open = true,
            Err(e) => tracing::warn!("cannot open a file dialog: {e}"),
        }
    }
}

/// Acts on what a dialog returned (called every frame; cheap when nothing came back).
pub fn take_picked(app: &mut KithApp) {
    while let Ok(picked) = app.pickers.rx.try_recv() {
        app.pickers.open = false;
        match picked {
            Picked::Files { to, paths } => send_files(app, &to, paths),
            Picked::Folder(dir) => {
                app.settings.downloads = Some(dir.display().to_string());
                app.save_settings();
            }
            Picked::Nothing { quick: true } => app.model.notices.push(
                "No file dialog could open on this desktop (it needs an XDG desktop portal or \
                 zenity). Drag files onto the window instead."
                    .into(),
            ),
            Picked::Nothing { quick: false } => {}
        }
    }
}

/// Offers every file to every recipient; each pair is a transfer of its own.
pub fn send_files(app: &mut KithApp, to: &Recipients, paths: Vec<PathBuf>) {
    let peers: Vec<String> = match to {
        Recipients::Room(room) => app
            .model
            .members(room)
            .into_iter()
            .filter(|p| p.secure && p.online() && !p.identity_changed)
            .map(|p| p.fingerprint.clone())
            .collect(),
        Recipients::Peer(fp) => app
            .model
            .peers
            .get(fp)
            .filter(|p| p.secure && !p.identity_changed)
            .map(|p| p.fingerprint.clone())
            .into_iter()
            .collect(),
    };
    if peers.is_empty() {
        let whom = match to {
            Recipients::Room(room) => format!("nobody in #{room} is"),
            Recipients::Peer(fp) => {
                format!("{} is not", app.model.peers.get(fp).map_or("that person", |p| &p.name))
            }
        };
        app.model.notices.push(format!(
            "Not sent: {whom} connected with an encrypted session right now (or a changed \
             identity waits for your review)."
        ));
        return;
    }
    for path in paths.into_iter().filter(|p| !p.is_dir()) {
        for peer in &peers {
            app.command(ClientCommand::SendFile { peer: peer.clone(), path: path.display().to_string() });
        }
    }
}

/// Files dragged over the window get a hint; dropped ones go to everyone in the room.
pub fn drop_target(app: &mut KithApp, ctx: &egui::Context, room: &str) {
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
        send_files(app, &Recipients::Room(room.to_string()), paths);
    }
}

/// The strip above the composer: every transfer still relevant, newest at the bottom.
pub fn strip(app: &mut KithApp, ui: &mut Ui) {
    if app.model.files.list.is_empty() {
        return;
    }
    egui::Panel::bottom("transfers").resizable(false).show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.label(RichText::new("FILES").small().strong().weak());
            if app.model.files.list.iter().any(Transfer::finished)
                && ui.small_button("Clear finished").clicked()
            {
                app.model.files.clear_finished();
            }
        });
        let now = app.now_ms();
        let rows = app.model.files.list.clone();
        egui::ScrollArea::vertical().max_height(190.0).min_scrolled_height(190.0).stick_to_bottom(true).show(
            ui,
            |ui| {
                for t in &rows {
                    transfer_row(app, ui, t, now);
                }
            },
        );
        ui.add_space(2.0);
    });
}

fn transfer_row(app: &mut KithApp, ui: &mut Ui, t: &Transfer, now_ms: u64) {
    let who =
        app.model.peers.get(&t.peer).map_or_else(|| t.peer.chars().take(8).collect(), |p| p.name.clone());
    let ctx = ui.ctx().clone();
    let thumb = match (&t.path, t.incoming, &t.state) {
        // A received file is only looked at once it is whole and its hash checked.
        (Some(path), false, _) | (Some(path), true, TransferState::Done) if thumbnails::is_image(&t.name) => {
            app.thumbs.get(&ctx, &t.id, std::path::Path::new(path))
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
            status_line(app, ui, t, &who, now_ms);
        });
    });
}

fn status_line(app: &mut KithApp, ui: &mut Ui, t: &Transfer, who: &str, now_ms: u64) {
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
                if ui.button("Accept").on_hover_text(save_hint(app)).clicked() {
                    app.command(ClientCommand::AcceptFile { id: id.clone() });
                }
                if ui.button("Decline").clicked() {
                    app.command(ClientCommand::DeclineFile { id: id.clone() });
                }
            });
        }
        TransferState::Offered => {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Waiting for {who} to accept")).weak());
                if ui.small_button("Cancel").clicked() {
                    app.command(ClientCommand::CancelFile { id: id.clone() });
                }
            });
        }
        TransferState::Moving => {
            ui.horizontal(|ui| {
                let mut text = format!("{:.0} %", t.fraction() * 100.0);
                if let Some(rate) = t.rate(now_ms) {
                    text.push_str(&format!(" · {}/s", human_bytes(rate as u64)));
                }
                ui.add(egui::ProgressBar::new(t.fraction()).desired_width(260.0).text(text));
                if ui.small_button("Cancel").clicked() {
                    app.command(ClientCommand::CancelFile { id: id.clone() });
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

fn save_hint(app: &KithApp) -> String {
    match app.settings.downloads.as_deref().filter(|d| !d.trim().is_empty()) {
        Some(dir) => format!("Saved in {dir}"),
        None => "Saved in your downloads folder (change it in Settings)".into(),
    }
}
