//! The views drawn and clicked with nothing behind them: no app, no core, no settings file.
//! Each test gives a view a model, clicks like a user, and checks the actions it asked for.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use super::actions::{Actions, Frame, UiAction};
use super::connect::{self, ConnectForm};
use super::model::Model;
use super::settings::Settings;
use super::view::ViewState;
use super::{main_view, settings_view, style};
use crate::core::{ClientCommand, ClientEvent};

const NOW: u64 = 1_763_900_000_000;
const BOB: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";

struct Window {
    model: Model,
    view: ViewState,
    settings: Settings,
    actions: Vec<UiAction>,
    /// What the microphone meter reads.
    mic_level_db: Option<f32>,
}

fn window(events: Vec<ClientEvent>) -> Window {
    let mut model = Model::default();
    for ev in events {
        model.apply(ev, Some("general"), NOW);
    }
    let view = ViewState { room: Some("general".into()), ..ViewState::default() };
    Window { model, view, settings: Settings::default(), actions: Vec::new(), mic_level_db: None }
}

fn with_bob(verified: bool) -> Vec<ClientEvent> {
    vec![
        ClientEvent::Ready { name: "Alice".into(), fingerprint: "a1".repeat(32), hub: "hub:7447".into() },
        ClientEvent::Joined { room: "general".into() },
        ClientEvent::PeerJoined { room: "general".into(), peer: BOB.into(), name: "bob".into() },
        ClientEvent::PeerSecure {
            peer: BOB.into(),
            name: "bob".into(),
            safety_number: "43862 11804 79054 75619 81092 25856 57111 37509 03264 71664 58072 22017".into(),
            sas: "🐶 🦄 🔑 🌵 🤖 🎸 ☂️".into(),
            sas_words: "Dog Unicorn Key Cactus Robot Guitar Umbrella".into(),
            sas_digits: "7079 2594 3050 7494".into(),
            verified,
            identity_changed: false,
        },
    ]
}

/// A window drawing `draw` over `state`, with Kith's fonts and look.
fn harness<S: 'static>(draw: impl FnMut(&mut egui::Ui, &mut S) + 'static, state: S) -> Harness<'static, S> {
    Harness::builder()
        .with_size(egui::vec2(1040.0, 700.0))
        .with_context_setup(style::install)
        .build_ui_state(draw, state)
}

fn frame<'a>(model: &'a Model, settings: &'a Settings) -> Frame<'a> {
    Frame {
        model,
        now_ms: NOW,
        utc_offset: None,
        settings,
        settings_error: None,
        picker_open: false,
        host_password: None,
        mic_level_db: None,
    }
}

/// The main window over `w`, collecting what it asks for.
fn main_window(w: Window) -> Harness<'static, Window> {
    harness(
        |ui, w: &mut Window| {
            let ctx = ui.ctx().clone();
            let frame = Frame { mic_level_db: w.mic_level_db, ..frame(&w.model, &w.settings) };
            let mut out = Actions::default();
            main_view::show(ui, &ctx, &frame, &mut w.view, &mut out);
            w.actions.extend(out.take());
        },
        w,
    )
}

#[test]
fn marking_a_peer_verified_is_a_command_and_changes_nothing_by_itself() {
    let mut w = window(with_bob(false));
    w.view.dialog = Some(BOB.into());
    let mut h = main_window(w);
    h.run();
    h.get_by_label("Mark as verified").click();
    h.run();
    let verify: Vec<_> = h
        .state()
        .actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Command(ClientCommand::Verify { peer, verified }) => Some((peer.clone(), *verified)),
            _ => None,
        })
        .collect();
    assert_eq!(verify, [(BOB.to_string(), true)]);
    // Only the core's answer marks bob verified.
    assert!(!h.state().model.peers[BOB].verified);
}

#[test]
fn enter_sends_the_draft_and_a_too_long_one_stays_with_a_notice() {
    let mut h = main_window(window(with_bob(true)));
    h.run();
    let composer = egui::accesskit::Role::MultilineTextInput;
    h.get_by(|n| n.role() == composer).focus();
    h.run_steps(1);
    h.get_by(|n| n.role() == composer).type_text("hi bob");
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    let sent: Vec<_> = h
        .state()
        .actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Send { room, text, expires_in_s } => Some((room.clone(), text.clone(), *expires_in_s)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [("general".to_string(), "hi bob".to_string(), None)]);
    assert_eq!(h.state().view.drafts["general"], "");
    // The view does not record the message: the app does, when it applies the action.
    assert!(!h.state().model.rooms["general"].messages.iter().any(|m| m.text() == "hi bob"));

    h.state_mut().actions.clear();
    let long = "x".repeat(crate::core::MAX_TEXT + 1);
    h.state_mut().view.drafts.insert("general".into(), long.clone());
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    let actions = &h.state().actions;
    assert!(actions.iter().any(|a| matches!(a, UiAction::Notice(n) if n.contains("limit"))), "{actions:?}");
    assert!(!actions.iter().any(|a| matches!(a, UiAction::Send { .. })));
    assert_eq!(h.state().view.drafts["general"], long);
}

/// The Settings dialog alone; its settings actions are applied like the app does, so the
/// next frame draws the new settings.
fn settings_dialog() -> Harness<'static, Window> {
    let mut w = window(with_bob(true));
    w.view.settings_open = true;
    harness(
        |ui, w: &mut Window| {
            let ctx = ui.ctx().clone();
            let frame = Frame { mic_level_db: w.mic_level_db, ..frame(&w.model, &w.settings) };
            let mut out = Actions::default();
            settings_view::dialog(&ctx, &frame, &mut w.view, &mut out);
            for a in out.take() {
                if let UiAction::Settings { settings, .. } = &a {
                    w.settings = (**settings).clone();
                }
                w.actions.push(a);
            }
        },
        w,
    )
}

#[test]
fn a_settings_click_comes_back_as_settings_to_save() {
    let mut h = settings_dialog();
    h.run();
    // An untouched dialog asks for nothing but the microphone's level and the list of sound
    // devices, once.
    let asked = [ClientCommand::MicTest { on: true }, ClientCommand::Devices];
    assert_eq!(commands(h.state()), asked, "{:?}", h.state().actions);
    assert_eq!(h.state().actions.len(), 2);
    h.state_mut().actions.clear();
    assert!(h.state().settings.notifications);
    h.get_by_label("Notify me of messages while Kith is in the background").click();
    h.run();
    let saves: Vec<bool> = h
        .state()
        .actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Settings { settings, save } => Some(*save && !settings.notifications),
            _ => None,
        })
        .collect();
    assert_eq!(saves, [true]);
}

#[test]
fn typing_in_settings_saves_when_the_field_lets_go_not_per_keystroke() {
    let mut h = settings_dialog();
    h.run();
    h.get_by_label("Default hub").focus();
    h.run();
    h.get_by_label("Default hub").type_text("hub.example:7447");
    h.run();
    let saves = |h: &Harness<'_, Window>| {
        h.state().actions.iter().filter(|a| matches!(a, UiAction::Settings { save: true, .. })).count()
    };
    assert_eq!(saves(&h), 0, "typing alone writes nothing");
    assert_eq!(h.state().settings.default_hub, "hub.example:7447", "but the settings hold it");
    assert!(h.state().view.settings_dirty);
    h.key_press(egui::Key::Tab);
    h.run();
    // Once for the field letting go (egui may lay a frame out twice, and then says so in
    // both passes; a second write of the same settings is harmless).
    let after = saves(&h);
    assert!((1..=2).contains(&after), "{after} writes for leaving one field");
    assert!(!h.state().view.settings_dirty);
}

#[test]
fn the_join_form_explains_a_bad_address_and_asks_to_join_a_good_one() {
    struct Connect {
        form: ConnectForm,
        model: Model,
        settings: Settings,
        actions: Vec<UiAction>,
    }
    let settings = Settings { display_name: Some("Alice".into()), ..Settings::default() };
    let mut form = ConnectForm::from_settings(&settings);
    form.mode = connect::Mode::Join;
    let state = Connect { form, model: Model::default(), settings, actions: Vec::new() };
    let mut h = harness(
        |ui, c: &mut Connect| {
            let frame = frame(&c.model, &c.settings);
            let mut out = Actions::default();
            connect::show(ui, &mut c.form, &frame, &mut out);
            c.actions.extend(out.take());
        },
        state,
    );
    h.run();
    h.get_by_label("Hub address").type_text("nowhere");
    h.get_by_label("Join").click();
    h.run();
    assert!(h.state().actions.is_empty());
    let problem = h.state().form.problem.clone().map(|p| p.title).unwrap_or_default();
    assert!(problem.contains("host:port"), "{problem}");

    h.state_mut().form.join_addr = "nowhere:7447".into();
    h.run();
    h.get_by_label("Join").click();
    h.run();
    let joins: Vec<String> = h
        .state()
        .actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Join { launch, accept_new_hub_key: false } => Some(launch.label.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(joins, ["nowhere:7447"]);
    assert!(h.state().form.problem.is_none());
}

fn commands(w: &Window) -> Vec<ClientCommand> {
    w.actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Command(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_ringing_call_is_a_banner_whose_accept_joins_it_and_decline_says_so() {
    let mut events = with_bob(true);
    events.push(ClientEvent::Call {
        room: "general".into(),
        state: "ringing".into(),
        members: vec![BOB.into()],
    });
    let mut h = main_window(window(events));
    h.run();
    h.get_by_label_contains("bob is calling in #general");
    h.get_by_label("📞 Join call");
    h.get_by_label("Accept").click();
    h.run();
    assert_eq!(commands(h.state()), [ClientCommand::Call { room: "general".into() }]);
    h.state_mut().actions.clear();
    h.get_by_label("Decline").click();
    h.run();
    assert_eq!(commands(h.state()), [ClientCommand::DeclineCall { room: "general".into() }]);
}

#[test]
fn in_a_call_the_bar_shows_who_speaks_and_mute_deafen_and_hang_up_are_commands() {
    let mut events = with_bob(true);
    events.push(ClientEvent::Call {
        room: "general".into(),
        state: "joined".into(),
        members: vec![BOB.into()],
    });
    events.push(ClientEvent::Error {
        code: "media".into(),
        message:
            "no microphone (the sound system has no default input device): the call goes on receive-only"
                .into(),
        fatal: false,
        tag: None,
    });
    let mut h = main_window(window(events));
    h.run();
    h.get_by_label("In a call in #general");
    h.get_by_label_contains("receive-only");
    // Bob has no direct link (the window heard of none): the bar says he cannot hear the call.
    h.get_by_label("⚠ no direct link");
    h.get_by_label("📞 Leave call");
    h.get_by_label("Mute mic").click();
    h.run();
    h.get_by_label("🔈 Deafen").click();
    h.run();
    h.get_by_label("Hang up").click();
    h.run();
    assert_eq!(
        commands(h.state()),
        [ClientCommand::Mute { on: true }, ClientCommand::Deafen { on: true }, ClientCommand::Hangup]
    );
    // Muted, the button offers to unmute.
    h.get_by_label("Unmute mic");
}

#[test]
fn with_no_call_the_button_starts_one_and_is_off_while_offline() {
    let mut h = main_window(window(with_bob(true)));
    h.run();
    h.get_by_label("📞 Call").click();
    h.run();
    assert_eq!(commands(h.state()), [ClientCommand::Call { room: "general".into() }]);
    h.state_mut().model.apply(ClientEvent::Disconnected { reason: "hub gone".into() }, None, NOW);
    h.state_mut().actions.clear();
    h.run();
    h.get_by_label("📞 Call").click();
    h.run();
    assert!(commands(h.state()).is_empty(), "a call needs the hub");
}

#[test]
fn picking_a_microphone_in_settings_switches_the_call_to_it_and_is_saved() {
    let mut h = settings_dialog();
    h.state_mut().model.apply(
        ClientEvent::Devices {
            host: "PulseAudio".into(),
            inputs: vec![["usb_headset".into(), "USB Headset".into()]],
            outputs: vec![["speakers".into(), "Built-in Speakers".into()]],
            default_input: None,
            default_output: Some("speakers".into()),
            cameras: vec![],
        },
        None,
        NOW,
    );
    h.run();
    h.get_by_label("Microphone").click();
    h.run();
    h.get_by_label("USB Headset").click();
    h.run();
    assert!(
        commands(h.state())
            .contains(&ClientCommand::UseDevices { mic: Some("usb_headset".into()), speaker: None }),
        "{:?}",
        h.state().actions
    );
    assert_eq!(h.state().settings.microphone.as_deref(), Some("usb_headset"));
    assert!(h.state().actions.iter().any(|a| matches!(a, UiAction::Settings { save: true, .. })));
}

#[test]
fn settings_opens_the_microphone_for_its_meter_and_closes_it_again() {
    let mut h = settings_dialog();
    h.run();
    assert_eq!(commands(h.state())[0], ClientCommand::MicTest { on: true });
    // Nothing measured yet: the row says so, then the media layer's reason when it has one.
    h.get_by_label("Opening the microphone…");
    h.state_mut().model.apply(
        ClientEvent::Error {
            code: "media".into(),
            message: "no microphone (the sound system has no default input device): the call goes on \
                      receive-only"
                .into(),
            fatal: false,
            tag: None,
        },
        None,
        NOW,
    );
    h.run();
    h.get_by_label_contains("no default input device");
    h.state_mut().mic_level_db = Some(-23.4);
    h.run();
    h.get_by_label("-23 dB");
    // Opened once, however many frames are drawn; closed with the dialog.
    let tests =
        |w: &Window| commands(w).iter().filter(|c| matches!(c, ClientCommand::MicTest { .. })).count();
    assert_eq!(tests(h.state()), 1);
    h.get_by_label("Close window").click();
    h.run();
    // (This harness draws the dialog whether open or not: only the close itself is looked at.)
    assert!(commands(h.state()).contains(&ClientCommand::MicTest { on: false }));
    assert!(!h.state().view.settings_open);
}

#[test]
fn with_push_to_talk_the_call_hears_us_only_while_the_key_is_held() {
    let mut events = with_bob(true);
    events.push(ClientEvent::Call {
        room: "general".into(),
        state: "joined".into(),
        members: vec![BOB.into()],
    });
    let mut w = window(events);
    w.settings.push_to_talk = true;
    let mut h = main_window(w);
    h.run();
    let mutes = |w: &Window| {
        commands(w)
            .into_iter()
            .filter_map(|c| match c {
                ClientCommand::Mute { on } => Some(on),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // Not held: muted at once, and said once.
    assert_eq!(mutes(h.state()), [true]);
    h.get_by_label("hold F9 to talk");
    h.key_down(egui::Key::F9);
    h.run();
    assert_eq!(mutes(h.state()), [true, false]);
    h.get_by_label("● talking");
    h.key_up(egui::Key::F9);
    h.run();
    assert_eq!(mutes(h.state()), [true, false, true]);
    // Muted by the button, holding the key sends nothing.
    h.get_by_label("Mute mic").click();
    h.run();
    h.key_down(egui::Key::F9);
    h.run();
    assert_eq!(mutes(h.state()), [true, false, true]);
}

/// Settings open on a machine whose sound system lists nothing and with these cameras.
fn settings_with_cameras(cameras: Vec<[String; 2]>) -> Harness<'static, Window> {
    let mut h = settings_dialog();
    let (inputs, outputs) = (vec![], vec![]);
    let host = "ALSA".into();
    let devices =
        ClientEvent::Devices { host, inputs, outputs, default_input: None, default_output: None, cameras };
    h.state_mut().model.apply(devices, None, NOW);
    h.run();
    h
}

#[test]
fn the_systems_webcams_are_in_the_camera_picker_and_picking_one_switches_to_it() {
    let mut h =
        settings_with_cameras(vec![["HD Webcam C270".into(), "HD Webcam C270 (usb-0000:00:14.0-1)".into()]]);
    assert!(h.query_by_label_contains("No camera found").is_none());
    h.get_by_label("Camera").click();
    h.run();
    h.get_by_label("HD Webcam C270 (usb-0000:00:14.0-1)").click();
    h.run();
    let switched = commands(h.state())
        .into_iter()
        .any(|c| matches!(c, ClientCommand::UseCamera { camera, .. } if camera == "HD Webcam C270"));
    assert!(switched, "{:?}", h.state().actions);
    assert_eq!(h.state().settings.camera.as_deref(), Some("HD Webcam C270"));
}

#[test]
fn a_machine_without_a_camera_is_told_so_in_settings() {
    let h = settings_with_cameras(vec![]);
    h.get_by_label_contains("No camera found: calls go on without your video.");
}
