//! Host a hub in the app, or join someone else's; failures explained with what to do next.

use std::net::{Ipv6Addr, SocketAddr};

use egui::{RichText, Ui};
use zeroize::Zeroizing;

use super::actions::{Actions, Frame, Launch, UiAction};
use super::model::{Connection, Fatal};
use super::settings::{RecentHub, Settings};
use super::style;
use crate::core::{Invitation, MAX_ROOM, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Host,
    Join,
}

/// A failure in words: what happened, what to do, and whether "trust the new key" applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub title: String,
    pub advice: String,
    pub detail: String,
    pub hub_key_changed: bool,
}

pub struct ConnectForm {
    pub mode: Mode,
    pub host_port: String,
    pub host_password: Zeroizing<String>,
    pub host_room: String,
    pub join_addr: String,
    pub join_password: Zeroizing<String>,
    pub join_room: String,
    pub problem: Option<Problem>,
}

impl ConnectForm {
    pub fn from_settings(s: &Settings) -> Self {
        let recent = s.recent_hubs.first();
        Self {
            mode: if s.default_hub.is_empty() && recent.is_none() { Mode::Host } else { Mode::Join },
            host_port: s.host_port.to_string(),
            host_password: Zeroizing::new(String::new()),
            host_room: s.host_room.clone(),
            join_addr: s.default_hub.clone(),
            join_password: Zeroizing::new(String::new()),
            join_room: recent.map(|h| h.room.clone()).unwrap_or_else(|| "general".into()),
            problem: None,
        }
    }

    /// Shows `fatal` in words.
    pub fn failed(&mut self, fatal: &Fatal, launch: Option<&Launch>) {
        let place = launch.map(|l| l.label.clone()).unwrap_or_else(|| "the hub".into());
        self.problem = Some(explain(fatal, &place));
    }
}

/// Turns the core's fatal codes into sentences a user can act on.
pub fn explain(fatal: &Fatal, place: &str) -> Problem {
    let (title, advice) = match fatal.code.as_str() {
        "hub_unreachable" => (
            format!("Could not reach {place}"),
            "Check the address and port with your friend, make sure their Kith is hosting, and \
             that their firewall or router lets the port through."
                .to_string(),
        ),
        "auth_failed" => (
            "Wrong password".to_string(),
            "The hub refused the password. Ask the host for the current one and try again.".to_string(),
        ),
        "rate_limited" => (
            "Too many wrong passwords".to_string(),
            "The hub is refusing this address for a minute after repeated failures. Wait a minute, \
             then try again with the right password."
                .to_string(),
        ),
        "bad_name" => (
            "The hub refused your display name".to_string(),
            "Pick a different display name in Settings and connect again.".to_string(),
        ),
        "hub_key_changed" => (
            format!("{place} is not the hub you met before"),
            "Its key changed since you last connected. That happens when the host reinstalls or \
             moves their hub, but it is also what an impostor looks like. Ask the host (by phone or \
             in person) whether they changed it, and only then trust the new key."
                .to_string(),
        ),
        "hub_refused" => (
            format!("{place} closed the connection"),
            "The hub hung up before sign-in. It may be full, or not a Kith hub. Check the address \
             and try again in a minute."
                .to_string(),
        ),
        "listen_failed" => (
            "Could not start hosting".to_string(),
            "Another program may be using that port, or ports below 1024 need privileges. Pick \
             another port (for example 7777)."
                .to_string(),
        ),
        _ => (
            "Could not connect".to_string(),
            "Try again; if it keeps failing, check the details below.".to_string(),
        ),
    };
    Problem { title, advice, detail: fatal.message.clone(), hub_key_changed: fatal.code == "hub_key_changed" }
}

enum Choice {
    Host,
    Join,
    TrustNewKey,
    Cancel,
}

pub fn show(ui: &mut Ui, form: &mut ConnectForm, f: &Frame, out: &mut Actions) {
    let connecting = f.model.connection == Some(Connection::Connecting);
    let name = f.settings.display_name.as_deref().unwrap_or_default();
    let recent = &f.settings.recent_hubs;
    let mut action = None;
    egui::CentralPanel::default().show(ui, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() * 0.06);
            ui.heading(RichText::new("Connect").size(26.0));
            ui.label(format!("Signed in as {name}"));
            ui.add_space(12.0);
        });
        let width = ui.available_width().min(520.0);
        ui.vertical_centered(|ui| {
            ui.set_max_width(width);
            ui.horizontal(|ui| {
                ui.selectable_value(&mut form.mode, Mode::Host, "🏠 Host a hub");
                ui.selectable_value(&mut form.mode, Mode::Join, "🔗 Join a hub");
            });
            ui.separator();
            ui.add_enabled_ui(!connecting, |ui| match form.mode {
                Mode::Host => host_form(ui, form, &mut action),
                Mode::Join => join_form(ui, form, recent, &mut action),
            });
            if connecting {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Connecting…");
                    if ui.button("Cancel").clicked() {
                        action = Some(Choice::Cancel);
                    }
                });
            }
            if let Some(p) = &form.problem {
                ui.add_space(8.0);
                style::callout(ui, style::DANGER, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(RichText::new(&p.title).strong().color(style::DANGER));
                    ui.label(&p.advice);
                    ui.label(RichText::new(&p.detail).small().weak());
                    if p.hub_key_changed && ui.button("The host confirmed: trust the new key").clicked() {
                        action = Some(Choice::TrustNewKey);
                    }
                });
            }
        });
    });
    match action {
        Some(Choice::Host) => {
            if let Some((launch, port)) = host_launch(form, f.settings) {
                out.push(UiAction::Host { launch, port });
            }
        }
        Some(Choice::Join) => join(form, false, out),
        Some(Choice::TrustNewKey) => join(form, true, out),
        Some(Choice::Cancel) => out.push(UiAction::CancelConnect),
        None => {}
    }
}

fn host_form(ui: &mut Ui, form: &mut ConnectForm, action: &mut Option<Choice>) {
    ui.label(
        "Run the hub inside this app. Friends connect to your address; the hub only passes \
              along encrypted messages, it cannot read them.",
    );
    egui::Grid::new("host_grid").num_columns(2).spacing([12.0, 8.0]).show(ui, |ui| {
        let l = ui.label("Port");
        ui.add(egui::TextEdit::singleline(&mut form.host_port).desired_width(80.0)).labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Hub password");
        ui.add(egui::TextEdit::singleline(&mut *form.host_password).password(true).desired_width(240.0))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("First room");
        ui.add(egui::TextEdit::singleline(&mut form.host_room).desired_width(240.0)).labelled_by(l.id);
        ui.end_row();
    });
    ui.label(RichText::new("Tell friends the password over a channel you trust.").weak());
    if ui.button("Start hosting").clicked() {
        *action = Some(Choice::Host);
    }
}

fn join_form(ui: &mut Ui, form: &mut ConnectForm, recent: &[RecentHub], action: &mut Option<Choice>) {
    egui::Grid::new("join_grid").num_columns(2).spacing([12.0, 8.0]).show(ui, |ui| {
        let l = ui.label("Hub address");
        ui.add(
            egui::TextEdit::singleline(&mut form.join_addr)
                .hint_text("host:port, or paste an invitation")
                .desired_width(260.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "An invitation (kith://…) from the host also tells Kith the hub's key and who invited you",
        );
        ui.end_row();
        let l = ui.label("Password");
        let pw =
            ui.add(egui::TextEdit::singleline(&mut *form.join_password).password(true).desired_width(260.0));
        let pw = pw.labelled_by(l.id);
        if pw.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            *action = Some(Choice::Join);
        }
        ui.end_row();
        let l = ui.label("Room");
        ui.add(egui::TextEdit::singleline(&mut form.join_room).desired_width(260.0)).labelled_by(l.id);
        ui.end_row();
    });
    if ui.button("Join").clicked() {
        *action = Some(Choice::Join);
    }
    if !recent.is_empty() {
        ui.add_space(8.0);
        ui.label(RichText::new("Recent hubs").strong());
        for hub in recent {
            let label = format!("{}  ·  #{}", hub.addr, hub.room);
            if ui.link(label).clicked() {
                form.join_addr = hub.addr.clone();
                form.join_room = hub.room.clone();
            }
        }
    }
}

fn validate_room(room: &str) -> Result<String, String> {
    let room = room.trim();
    if room.is_empty() || room.len() > MAX_ROOM {
        return Err("Room names are 1 to 64 characters.".into());
    }
    Ok(room.to_string())
}

/// The hub to host as the form describes it, or the form shows what is wrong.
fn host_launch(form: &mut ConnectForm, settings: &Settings) -> Option<(Launch, u16)> {
    let Ok(port) = form.host_port.trim().parse::<u16>() else {
        form.problem = Some(simple("That port is not a number from 0 to 65535."));
        return None;
    };
    if form.host_password.is_empty() {
        form.problem = Some(simple("Choose a password: friends need it to join your hub."));
        return None;
    }
    let room = match validate_room(&form.host_room) {
        Ok(r) => r,
        Err(e) => {
            form.problem = Some(simple(&e));
            return None;
        }
    };
    form.problem = None;
    let name = settings.display_name.clone().unwrap_or_default();
    let launch = Launch {
        target: Target::Host {
            listen: SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            rooms: vec![room.clone()],
            hub_name: format!("{name}'s hub"),
            stun: settings.stun_servers.clone(),
        },
        password: form.host_password.clone(),
        room,
        label: format!("port {port}"),
        invitation: None,
    };
    Some((launch, port))
}

/// Asks to join the hub the form names, or the form shows what is wrong.
pub(super) fn join(form: &mut ConnectForm, accept_new_hub_key: bool, out: &mut Actions) {
    // An invitation pasted (or opened as a kith:// link) in place of the address.
    let invitation = match form.join_addr.contains("kith://").then(|| Invitation::parse(&form.join_addr)) {
        Some(Ok(inv)) => Some(inv),
        Some(Err(e)) => {
            form.problem = Some(simple(&format!("That invitation cannot be read: {e}.")));
            return;
        }
        None => None,
    };
    let addr = match &invitation {
        Some(inv) => inv.hubs[0].clone(),
        None => form.join_addr.trim().to_string(),
    };
    let password = match invitation.as_ref().and_then(|i| i.password.clone()) {
        Some(pw) if form.join_password.is_empty() => pw,
        _ => form.join_password.clone(),
    };
    if addr.is_empty() || !addr.contains(':') {
        form.problem = Some(simple("Enter the hub's address as host:port, e.g. 192.168.1.20:7777."));
        return;
    }
    let room = match validate_room(&form.join_room) {
        Ok(r) => r,
        Err(e) => {
            form.problem = Some(simple(&e));
            return;
        }
    };
    form.problem = None;
    let launch = Launch { target: Target::Hub(addr.clone()), password, room, label: addr, invitation };
    out.push(UiAction::Join { launch, accept_new_hub_key });
}

fn simple(text: &str) -> Problem {
    Problem { title: text.to_string(), advice: String::new(), detail: String::new(), hub_key_changed: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fatal_code_of_the_core_has_words_and_advice() {
        for code in [
            "hub_unreachable",
            "auth_failed",
            "rate_limited",
            "bad_name",
            "hub_key_changed",
            "hub_refused",
            "listen_failed",
        ] {
            let p = explain(&Fatal { code: code.into(), message: "detail".into() }, "10.0.0.1:7777");
            assert_ne!(p.title, "Could not connect", "{code} has no words of its own");
            assert!(!p.advice.is_empty());
            assert_eq!(p.hub_key_changed, code == "hub_key_changed");
        }
    }
}
