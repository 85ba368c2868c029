//! The main window: rooms and members on the left, the conversation in the middle, the
//! composer at the bottom, and the dialogs on top.

use egui::{RichText, Ui};

use super::app::KithApp;
use super::files_view::{self, Recipients};
use super::model::{Connection, Peer, PublicAddress};
use super::{chat, fingerprint, settings_view, style};
use crate::protocol::events::{ClientCommand, LinkKind};

/// Expiry choices in the composer, in seconds.
pub const EXPIRY_CHOICES: [(Option<u64>, &str); 6] = [
    (None, "Off"),
    (Some(30), "30 seconds"),
    (Some(5 * 60), "5 minutes"),
    (Some(60 * 60), "1 hour"),
    (Some(24 * 60 * 60), "1 day"),
    (Some(7 * 24 * 60 * 60), "1 week"),
];

pub fn show(app: &mut KithApp, ui: &mut Ui, ctx: &egui::Context) {
    files_view::take_picked(app);
    top_bar(app, ui);
    side_panel(app, ui);
    composer(app, ui);
    files_view::strip(app, ui);
    if let Some(room) = app.view.room.clone() {
        files_view::drop_target(app, ctx, &room);
    }
    egui::CentralPanel::default().show(ui, |ui| {
        let Some(room) = app.view.room.clone() else {
            ui.centered_and_justified(|ui| ui.label("Join a room from the left."));
            return;
        };
        let now = app.now_ms();
        let me = app.model.me_fingerprint.clone();
        let offset = app.utc_offset;
        if let Some(r) = app.model.rooms.get_mut(&room) {
            chat::show(ui, r, &me, now, offset);
        }
    });
    if app.view.dialog.is_some() {
        fingerprint::dialog(app, ctx);
    }
    if app.view.settings_open {
        settings_view::dialog(app, ctx);
    }
    if app.view.invite_open {
        invite_window(app, ctx);
    }
}

fn top_bar(app: &mut KithApp, ui: &mut Ui) {
    egui::Panel::top("top_bar").show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            if let Some(room) = &app.view.room {
                ui.label(RichText::new(format!("# {room}")).strong().size(18.0));
                let n = app.model.room(room).map(|r| r.members.len()).unwrap_or(0);
                ui.label(
                    RichText::new(format!("{} other member{}", n, if n == 1 { "" } else { "s" })).weak(),
                );
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("⚙").on_hover_text("Settings").clicked() {
                    app.view.settings_open = true;
                }
                if app.model.hosting.is_some()
                    && ui.button("📨 Invite").on_hover_text("Addresses friends can join").clicked()
                {
                    app.view.invite_open = true;
                }
                ui.add_enabled(false, egui::Button::new("📹 Video"))
                    .on_disabled_hover_text("Calls arrive in a coming version");
                ui.add_enabled(false, egui::Button::new("📞 Call"))
                    .on_disabled_hover_text("Calls arrive in a coming version");
                connection_status(ui, app.model.connection.as_ref(), &app.model.hub);
            });
        });
        ui.add_space(2.0);
    });
}

fn connection_status(ui: &mut Ui, c: Option<&Connection>, hub: &str) {
    match c {
        Some(Connection::Online) => {
            ui.label(RichText::new("● Online").color(style::OK)).on_hover_text(format!("Connected to {hub}"));
        }
        Some(Connection::Connecting) => {
            ui.label(RichText::new("● Connecting…").color(style::WARN));
        }
        Some(Connection::Reconnecting { reason }) => {
            ui.label(RichText::new("● Reconnecting…").color(style::WARN))
                .on_hover_text(format!("{reason}. Messages you send now are delivered once back."));
        }
        None => {}
    }
}

fn side_panel(app: &mut KithApp, ui: &mut Ui) {
    egui::Panel::left("rooms").resizable(true).default_size(230.0).size_range(180.0..=360.0).show(ui, |ui| {
        ui.add_space(8.0);
        ui.label(RichText::new(&app.model.me_name).strong().size(16.0));
        let fp = app.model.me_fingerprint.clone();
        ui.label(RichText::new(short_fp(&fp)).monospace().weak())
            .on_hover_text(format!("Your fingerprint: {fp}"));
        ui.separator();
        ui.label(RichText::new("ROOMS").small().strong().weak());
        let rooms: Vec<(String, usize)> =
            app.model.rooms.values().filter(|r| r.joined).map(|r| (r.name.clone(), r.unread)).collect();
        for (name, unread) in rooms {
            let selected = app.view.room.as_deref() == Some(name.as_str());
            ui.horizontal(|ui| {
                let text = if unread > 0 {
                    RichText::new(format!("# {name}")).strong()
                } else {
                    RichText::new(format!("# {name}"))
                };
                if ui.selectable_label(selected, text).clicked() {
                    app.view.room = Some(name.clone());
                    app.model.mark_read(&name);
                    app.view.focus_composer = true;
                }
                if unread > 0 {
                    style::count_badge(ui, unread);
                }
            });
        }
        ui.horizontal(|ui| {
            let edit = ui.add(
                egui::TextEdit::singleline(&mut app.view.new_room)
                    .hint_text("join room…")
                    .desired_width(120.0),
            );
            let go = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.small_button("+").on_hover_text("Join or create a room").clicked() || go)
                && !app.view.new_room.trim().is_empty()
            {
                let room = app.view.new_room.trim().to_string();
                app.view.new_room.clear();
                if app.command(ClientCommand::Join { room: room.clone() }) {
                    app.view.room = Some(room);
                }
            }
        });
        ui.separator();
        let Some(room) = app.view.room.clone() else { return };
        ui.label(RichText::new("MEMBERS").small().strong().weak());
        let members: Vec<Peer> = app.model.members(&room).into_iter().cloned().collect();
        if members.is_empty() {
            ui.label(RichText::new("Nobody else is here yet.").weak());
        }
        for p in members {
            let row = member_row(ui, &p);
            if row.clicked() {
                app.view.dialog = Some(p.fingerprint.clone());
            }
            row.context_menu(|ui| {
                if ui.button("Show safety number").clicked() {
                    app.view.dialog = Some(p.fingerprint.clone());
                }
                let can_send = p.secure && !p.identity_changed;
                if ui.add_enabled(can_send, egui::Button::new("📎 Send a file…")).clicked() {
                    let title = format!("Send files to {}", p.name);
                    app.pickers.pick_files(ui.ctx(), Recipients::Peer(p.fingerprint.clone()), title);
                }
            });
        }
    });
}

/// One member: presence dot, name, and the trust badges. Clicking opens the fingerprint dialog.
fn member_row(ui: &mut Ui, p: &Peer) -> egui::Response {
    let (dot, dot_hint) = if p.secure {
        (RichText::new("●").color(style::OK), "online, end-to-end encrypted")
    } else {
        (RichText::new("●").color(style::WARN), "online, setting up encryption")
    };
    let mut job = RichText::new(&p.name);
    if p.identity_changed {
        job = job.color(style::DANGER);
    }
    let inner = ui.horizontal(|ui| {
        ui.label(dot).on_hover_text(dot_hint);
        let name = ui.add(egui::Button::new(job).frame(false)).on_hover_text("Show safety number");
        if p.verified {
            ui.label(RichText::new("🛡").color(style::OK)).on_hover_text("Verified");
        }
        if p.identity_changed {
            ui.label(RichText::new("⚠").color(style::DANGER))
                .on_hover_text("Identity changed: review before sending");
        }
        if p.secure {
            link_badge(ui, p);
        }
        name
    });
    inner.inner
}

/// How messages and files travel to this person: straight between the two computers,
/// through a TURN relay, or through the hub (until a direct link opens, or when none can).
fn link_badge(ui: &mut Ui, p: &Peer) {
    let rtt = p.rtt_ms.map(|ms| format!(", {ms} ms round trip")).unwrap_or_default();
    let (text, color, hint) = match p.link {
        LinkKind::Direct => ("🔗 direct", style::OK, format!("Direct peer-to-peer link{rtt}")),
        LinkKind::Relay => (
            "🔗 relay",
            style::WARN,
            format!("Peer-to-peer through a TURN relay (it sees only encrypted packets){rtt}"),
        ),
        LinkKind::Hub => (
            "via hub",
            ui.visuals().weak_text_color(),
            "No direct link (yet): messages go through the hub, still end-to-end encrypted; files \
             wait for a direct link"
                .to_string(),
        ),
    };
    ui.label(RichText::new(text).small().color(color)).on_hover_text(hint);
}

pub fn short_fp(fp: &str) -> String {
    fp.chars()
        .take(16)
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

fn composer(app: &mut KithApp, ui: &mut Ui) {
    let Some(room) = app.view.room.clone() else { return };
    egui::Panel::bottom("composer").show(ui, |ui| {
        ui.add_space(6.0);
        let blocked: Vec<(String, String)> = app
            .model
            .unacknowledged_in(&room)
            .iter()
            .map(|p| (p.fingerprint.clone(), p.name.clone()))
            .collect();
        if !blocked.is_empty() {
            style::callout(ui, style::DANGER, |ui| {
                ui.set_width(ui.available_width());
                let names: Vec<&str> = blocked.iter().map(|(_, n)| n.as_str()).collect();
                ui.label(
                    RichText::new(format!(
                        "⚠ Sending is paused: the identity of {} changed.",
                        names.join(", ")
                    ))
                    .color(style::DANGER)
                    .strong(),
                );
                ui.horizontal(|ui| {
                    for (fp, name) in &blocked {
                        if ui.button(format!("Review {name}")).clicked() {
                            app.view.dialog = Some(fp.clone());
                        }
                    }
                });
            });
        }
        let mut dismiss = None;
        for (i, notice) in app.model.notices.iter().enumerate().rev().take(3) {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("⚠ {notice}")).color(style::WARN));
                if ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            app.model.notices.remove(i);
        }
        let mut send = false;
        ui.horizontal(|ui| {
            let expiry_label =
                EXPIRY_CHOICES.iter().find(|(s, _)| *s == app.view.expiry).map(|(_, l)| *l).unwrap_or("Off");
            egui::ComboBox::from_id_salt("expiry")
                .selected_text(format!("⏱ {expiry_label}"))
                .width(110.0)
                .show_ui(ui, |ui| {
                    for (secs, label) in EXPIRY_CHOICES {
                        ui.selectable_value(&mut app.view.expiry, secs, label);
                    }
                })
                .response
                .on_hover_text("Disappearing messages: delete after this long, on every device");
            let attach = ui
                .add_enabled(!app.pickers.is_open(), egui::Button::new("📎"))
                .on_hover_text(format!("Send files to everyone in #{room} (or drop them on the window)"));
            if attach.clicked() {
                let title = format!("Send files to #{room}");
                app.pickers.pick_files(ui.ctx(), Recipients::Room(room.clone()), title);
            }
            let draft = app.view.drafts.entry(room.clone()).or_default();
            let send_width = 70.0;
            let edit = egui::TextEdit::multiline(draft)
                .id_salt("composer")
                .hint_text(format!("Message #{room}"))
                .desired_rows(1)
                .desired_width(ui.available_width() - send_width)
                .return_key(egui::KeyboardShortcut::new(egui::Modifiers::SHIFT, egui::Key::Enter));
            let resp = ui.add(edit);
            if std::mem::take(&mut app.view.focus_composer) {
                resp.request_focus();
            }
            if resp.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter) && !i.modifiers.shift) {
                send = true;
            }
            if ui.add_enabled(blocked.is_empty(), egui::Button::new("Send")).clicked() {
                send = true;
            }
        });
        ui.add_space(6.0);
        if send && blocked.is_empty() {
            send_draft(app, &room);
        }
    });
}

fn send_draft(app: &mut KithApp, room: &str) {
    let Some(draft) = app.view.drafts.get_mut(room) else { return };
    let text = draft.trim_end().to_string();
    if text.trim().is_empty() {
        return;
    }
    if text.len() > crate::protocol::wire::MAX_TEXT {
        app.model.notices.push(format!(
            "That message is {} KiB; the limit is {} KiB. Split it or send it as a file.",
            text.len() / 1024,
            crate::protocol::wire::MAX_TEXT / 1024
        ));
        return;
    }
    draft.clear();
    let now = app.now_ms();
    let expires_in_s = app.view.expiry;
    let tag = app.model.outgoing(room, &text, now, expires_in_s);
    let cmd = ClientCommand::Send { room: room.to_string(), text, expires_in_s, tag: Some(tag.clone()) };
    if let Some(Err(e)) = app.core.as_ref().map(|c| c.send(cmd)) {
        app.model.fail_send(&tag, &e);
    }
}

fn invite_window(app: &mut KithApp, ctx: &egui::Context) {
    let Some(h) = app.model.hosting.clone() else { return };
    let mut open = true;
    let mut done = false;
    egui::Window::new("Invite friends").open(&mut open).collapsible(false).resizable(false).show(ctx, |ui| {
        ui.label("You are hosting. Friends choose Join and enter one of these addresses and the password.");
        ui.add_space(6.0);
        ui.label(RichText::new("On your network").strong());
        if h.lan.is_empty() {
            ui.label(RichText::new("No network address found (only loopback).").weak());
        }
        for addr in &h.lan {
            style::copy_field(ui, addr, true);
        }
        ui.add_space(6.0);
        ui.label(RichText::new("From the internet").strong());
        match &h.public {
            PublicAddress::Asking => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Asking a STUN server…");
                });
            }
            PublicAddress::Found { addr, via } => {
                style::copy_field(ui, addr, true);
                ui.label(
                    RichText::new(format!(
                        "Seen by {via}. Works once your router forwards this TCP port to this computer."
                    ))
                    .weak(),
                );
            }
            PublicAddress::Unknown { why } => {
                ui.label(RichText::new(format!("Unknown: {why}")).weak());
            }
        }
        ui.add_space(6.0);
        ui.label(RichText::new("Hub key (friends' apps remember it)").strong());
        style::copy_field(ui, &h.hub_fingerprint, true);
        ui.add_space(6.0);
        if ui.button("Done").clicked() {
            done = true;
        }
    });
    if !open || done {
        app.view.invite_open = false;
    }
}
