//! The main window: rooms and members on the left, the conversation in the middle, the
//! composer at the bottom, and the dialogs on top.

use egui::{RichText, Ui};
use zeroize::Zeroizing;

use super::actions::{Actions, Frame, Recipients, UiAction};
use super::model::{Connection, Hosting, Peer, PublicAddress};
use super::view::ViewState;
use super::{call_grid, call_view, chat, files_view, fingerprint, settings_view, style};
use crate::core::{LinkKind, MAX_TEXT};

/// Expiry choices in the composer, in seconds.
pub const EXPIRY_CHOICES: [(Option<u64>, &str); 6] = [
    (None, "Off"),
    (Some(30), "30 seconds"),
    (Some(5 * 60), "5 minutes"),
    (Some(60 * 60), "1 hour"),
    (Some(24 * 60 * 60), "1 day"),
    (Some(7 * 24 * 60 * 60), "1 week"),
];

pub fn show(ui: &mut Ui, ctx: &egui::Context, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    top_bar(ui, f, view, out);
    call_view::ringing_banners(ui, f, view, out);
    call_view::call_bar(ui, f, view, out);
    side_panel(ui, f, view, out);
    composer(ui, f, view, out);
    files_view::strip(ui, f, &mut view.thumbs, out);
    if let Some(room) = &view.room {
        files_view::drop_target(ctx, room, out);
    }
    if f.model.joined_call().is_some() {
        // The grid above the conversation, as tall as the user drags it.
        let h = ui.available_height();
        egui::Panel::top("call_grid")
            .resizable(true)
            .default_size(h * 0.62)
            .size_range(120.0..=(h - 80.0).max(120.0))
            .show(ui, |ui| call_grid::show(ui, f, view));
    }
    view.chat_rows.retain(|room, _| f.model.rooms.contains_key(room));
    egui::CentralPanel::default().show(ui, |ui| {
        let Some(room) = view.room.as_ref() else {
            ui.centered_and_justified(|ui| ui.label("Join a room from the left."));
            return;
        };
        if let Some(r) = f.model.rooms.get(room) {
            let rows = view.chat_rows.entry(room.clone()).or_default();
            chat::show(ui, r, rows, &f.model.me_fingerprint, f.now_ms, f.utc_offset);
        }
    });
    if view.dialog.is_some() {
        fingerprint::dialog(ctx, f, view, out);
    }
    if view.settings_open {
        settings_view::dialog(ctx, f, view, out);
    }
    if view.invite_open
        && let Some(hosting) = &f.model.hosting
    {
        invite_window(ctx, hosting, f.host_password, view);
    }
}

fn top_bar(ui: &mut Ui, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    egui::Panel::top("top_bar").show(ui, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            if let Some(room) = &view.room {
                ui.label(RichText::new(format!("# {room}")).strong().size(18.0));
                let n = f.model.room(room).map(|r| r.members.len()).unwrap_or(0);
                ui.label(
                    RichText::new(format!("{} other member{}", n, if n == 1 { "" } else { "s" })).weak(),
                );
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("⚙").on_hover_text("Settings").clicked() {
                    view.settings_open = true;
                }
                if f.model.hosting.is_some()
                    && ui.button("📨 Invite").on_hover_text("Addresses friends can join").clicked()
                {
                    view.invite_open = true;
                }
                camera_button(ui, f, out);
                if let Some(room) = &view.room {
                    call_view::call_button(ui, f, room, out);
                }
                connection_status(ui, f.model.connection.as_ref(), &f.model.hub);
            });
        });
        ui.add_space(2.0);
    });
}

/// Our camera's switch: for the call we are in, and the next.
fn camera_button(ui: &mut Ui, f: &Frame, out: &mut Actions) {
    let cam = f.model.camera;
    let (label, hover) = match (cam.on, cam.available) {
        (true, true) => ("📹 Stop camera", "Stop sending your camera"),
        (false, true) => ("📹 Start camera", "Show your camera in calls"),
        (_, false) => ("📹 Start camera", "No camera is chosen: pick one (or the test pattern) in Settings"),
    };
    let button = ui.add_enabled(cam.available, egui::Button::selectable(cam.on && cam.available, label));
    if button.on_hover_text(hover).on_disabled_hover_text(hover).clicked() {
        out.command(crate::core::ClientCommand::Camera { on: !cam.on });
    }
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

fn side_panel(ui: &mut Ui, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    let model = f.model;
    egui::Panel::left("rooms").resizable(true).default_size(230.0).size_range(180.0..=360.0).show(ui, |ui| {
        ui.add_space(8.0);
        ui.label(RichText::new(&model.me_name).strong().size(16.0));
        let fp = &model.me_fingerprint;
        ui.label(RichText::new(short_fp(fp)).monospace().weak())
            .on_hover_text(format!("Your fingerprint: {fp}"));
        ui.separator();
        ui.label(RichText::new("ROOMS").small().strong().weak());
        for room in model.rooms.values().filter(|r| r.joined) {
            let name = &room.name;
            let selected = view.room.as_deref() == Some(name.as_str());
            ui.horizontal(|ui| {
                let text = if room.unread > 0 {
                    RichText::new(format!("# {name}")).strong()
                } else {
                    RichText::new(format!("# {name}"))
                };
                if ui.selectable_label(selected, text).clicked() {
                    view.room = Some(name.clone());
                    view.focus_composer = true;
                    out.push(UiAction::MarkRead(name.clone()));
                }
                if room.unread > 0 {
                    style::count_badge(ui, room.unread);
                }
            });
        }
        ui.horizontal(|ui| {
            let edit = ui.add(
                egui::TextEdit::singleline(&mut view.new_room).hint_text("join room…").desired_width(120.0),
            );
            let go = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.small_button("+").on_hover_text("Join one of this hub's rooms").clicked() || go)
                && !view.new_room.trim().is_empty()
            {
                let room = view.new_room.trim().to_string();
                view.new_room.clear();
                out.push(UiAction::JoinRoom(room));
            }
        });
        ui.separator();
        let Some(room) = &view.room else { return };
        ui.label(RichText::new("MEMBERS").small().strong().weak());
        let members = model.members(room);
        if members.is_empty() {
            ui.label(RichText::new("Nobody else is here yet.").weak());
        }
        for p in members {
            let row = member_row(ui, p);
            if row.clicked() {
                view.dialog = Some(p.fingerprint.clone());
            }
            row.context_menu(|ui| {
                if ui.button("Show safety number").clicked() {
                    view.dialog = Some(p.fingerprint.clone());
                }
                let can_send = p.secure && !p.identity_changed && !f.picker_open;
                if ui.add_enabled(can_send, egui::Button::new("📎 Send a file…")).clicked() {
                    let title = format!("Send files to {}", p.name);
                    out.push(UiAction::PickFiles { to: Recipients::Peer(p.fingerprint.clone()), title });
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

fn composer(ui: &mut Ui, f: &Frame, view: &mut ViewState, out: &mut Actions) {
    let Some(room) = view.room.clone() else { return };
    egui::Panel::bottom("composer").show(ui, |ui| {
        ui.add_space(6.0);
        let blocked = f.model.unacknowledged_in(&room);
        if !blocked.is_empty() {
            style::callout(ui, style::DANGER, |ui| {
                ui.set_width(ui.available_width());
                let names: Vec<&str> = blocked.iter().map(|p| p.name.as_str()).collect();
                ui.label(
                    RichText::new(format!(
                        "⚠ Sending is paused: the identity of {} changed.",
                        names.join(", ")
                    ))
                    .color(style::DANGER)
                    .strong(),
                );
                ui.horizontal(|ui| {
                    for p in &blocked {
                        if ui.button(format!("Review {}", p.name)).clicked() {
                            view.dialog = Some(p.fingerprint.clone());
                        }
                    }
                });
            });
        }
        for (i, notice) in f.model.notices.iter().enumerate().rev().take(3) {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("⚠ {notice}")).color(style::WARN));
                if ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                    out.push(UiAction::DismissNotice(i));
                }
            });
        }
        let mut send = false;
        ui.horizontal(|ui| {
            let expiry_label =
                EXPIRY_CHOICES.iter().find(|(s, _)| *s == view.expiry).map(|(_, l)| *l).unwrap_or("Off");
            egui::ComboBox::from_id_salt("expiry")
                .selected_text(format!("⏱ {expiry_label}"))
                .width(110.0)
                .show_ui(ui, |ui| {
                    for (secs, label) in EXPIRY_CHOICES {
                        ui.selectable_value(&mut view.expiry, secs, label);
                    }
                })
                .response
                .on_hover_text("Disappearing messages: delete after this long, on every device");
            let attach = ui
                .add_enabled(!f.picker_open, egui::Button::new("📎"))
                .on_hover_text(format!("Send files to everyone in #{room} (or drop them on the window)"));
            if attach.clicked() {
                let title = format!("Send files to #{room}");
                out.push(UiAction::PickFiles { to: Recipients::Room(room.clone()), title });
            }
            let draft = view.drafts.entry(room.clone()).or_default();
            let send_width = 70.0;
            let edit = egui::TextEdit::multiline(draft)
                .id_salt("composer")
                .hint_text(format!("Message #{room}"))
                .desired_rows(1)
                .desired_width(ui.available_width() - send_width)
                .return_key(egui::KeyboardShortcut::new(egui::Modifiers::SHIFT, egui::Key::Enter));
            let resp = ui.add(edit);
            if std::mem::take(&mut view.focus_composer) {
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
            send_draft(view, &room, out);
        }
    });
}

/// Sends the draft unless it is empty or too long (then it stays, to be split or sent as a
/// file).
fn send_draft(view: &mut ViewState, room: &str, out: &mut Actions) {
    let Some(draft) = view.drafts.get_mut(room) else { return };
    let text = draft.trim_end().to_string();
    if text.trim().is_empty() {
        return;
    }
    if text.len() > MAX_TEXT {
        out.push(UiAction::Notice(format!(
            "That message is {} KiB; the limit is {} KiB. Split it or send it as a file.",
            text.len() / 1024,
            MAX_TEXT / 1024
        )));
        return;
    }
    draft.clear();
    out.push(UiAction::Send { room: room.to_string(), text, expires_in_s: view.expiry });
}

fn invite_window(ctx: &egui::Context, h: &Hosting, password: Option<&str>, view: &mut ViewState) {
    let mut open = true;
    let mut done = false;
    egui::Window::new("Invite friends").open(&mut open).collapsible(false).resizable(false).show(ctx, |ui| {
        if let Some(invitation) = &h.invitation {
            ui.label(RichText::new("Invitation").strong());
            ui.label(
                "Send friends this link. Joining with it, their Kith knows your hub's key and your \
                 identity, so nobody can put themselves between you unnoticed.",
            );
            let password = password.filter(|p| !p.is_empty());
            let mut invitation = invitation.clone();
            if view.invite_with_password
                && let Some(p) = password
            {
                invitation.password = Some(Zeroizing::new(p.to_string()));
            }
            style::copy_field(ui, &invitation.to_link(), true);
            if ui
                .button("📋 Copy as a message")
                .on_hover_text("The link with what it says, to paste in a chat or mail")
                .clicked()
            {
                ui.ctx().copy_text(invitation.to_text());
            }
            if password.is_some() {
                ui.checkbox(&mut view.invite_with_password, "Include the password")
                    .on_hover_text("Anyone who sees the link can then join: send it only where you trust");
            }
            let note = match (password, view.invite_with_password) {
                (None, _) => "The hub has no password: anyone with the address can join.",
                (Some(_), true) => "The password is in it: anyone who sees the link can join.",
                (Some(_), false) => "The password is not in it: tell them over a channel you trust.",
            };
            ui.label(RichText::new(note).weak());
            ui.add_space(8.0);
        }
        ui.label("Or: friends choose Join and enter one of these addresses and the password.");
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
        view.invite_open = false;
    }
}
