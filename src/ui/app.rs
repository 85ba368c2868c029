//! The eframe application: which screen is up, the core it talks to, and the settings.
//!
//! Each frame: drain the core's events into the model, draw the screen (views read the model
//! and push [`UiAction`]s), then apply the actions. Only this file changes the model, the
//! settings or the core; the views change nothing but their own view state.
//!
//! The UI thread only ever polls the core's event queue and queues commands; the core wakes it
//! with `request_repaint` when something arrives, so an idle window draws nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use super::actions::{Actions, Frame, Launch, Recipients, UiAction};
use super::model::{Connection, Fatal, Model};
use super::notify::{DesktopNotifier, Notify};
use super::pickers::{Picked, Pickers};
use super::settings::{Loaded, RecentHub, Settings, SettingsStore};
use super::view::ViewState;
use super::{connect, main_view, onboarding, settings_view};
use crate::core::{ClientCommand, ClientEvent, CoreHandle, CoreOptions, IdentityKey, Profile, Target};

/// Milliseconds since the Unix epoch; tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Most core events applied in one frame; the rest wait for the next (already requested).
const EVENTS_PER_FRAME: usize = 2000;

pub struct AppOptions {
    pub profile_dir: Option<PathBuf>,
    pub clock: Clock,
    /// Message times in this zone; None is the system's.
    pub utc_offset: Option<chrono::FixedOffset>,
    /// None shows desktop notifications.
    pub notifier: Option<Box<dyn Notify>>,
    /// When the process started, to report time to first frame.
    pub started: Option<Instant>,
    /// Join this hub at start (`kith --join`), once onboarding is done.
    pub autojoin: Option<AutoJoin>,
}

#[derive(Clone)]
pub struct AutoJoin {
    pub addr: String,
    pub room: String,
    pub password: Zeroizing<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            profile_dir: None,
            clock: Arc::new(crate::core::now_ms),
            utc_offset: None,
            notifier: None,
            started: None,
            autojoin: None,
        }
    }
}

pub enum Screen {
    /// The profile directory cannot be used; nothing else can work.
    Broken(String),
    Onboarding(onboarding::Onboarding),
    Connect(connect::ConnectForm),
    Main,
}

pub struct KithApp {
    profile: Option<Profile>,
    store: Option<SettingsStore>,
    settings: Settings,
    /// Why the settings file could not be read; the user decides to reset it.
    settings_problem: Option<String>,
    settings_problem_dismissed: bool,
    settings_error: Option<String>,
    screen: Screen,
    core: Option<CoreHandle>,
    launch: Option<Launch>,
    model: Model,
    view: ViewState,
    clock: Clock,
    utc_offset: Option<chrono::FixedOffset>,
    pickers: Pickers,
    notifier: Option<Box<dyn Notify>>,
    /// Cores being stopped in the background.
    stopping: Vec<std::thread::JoinHandle<()>>,
    started: Option<Instant>,
    first_frame: bool,
    applied_theme: Option<super::settings::Theme>,
    /// Rings while a call rings here.
    ringer: crate::core::Ringer,
    /// The video threads' latest-frame slots, shared with each core this window starts.
    tiles: Arc<crate::core::Tiles>,
}

impl KithApp {
    pub fn new(ctx: &egui::Context, opts: AppOptions) -> Self {
        super::style::install(ctx);
        let profile = Profile::open_exclusive(opts.profile_dir.as_deref());
        let (profile, screen) = match profile {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(Screen::Broken(e.to_string()))),
        };
        let store = profile.as_ref().map(|p| SettingsStore::in_dir(p.dir()));
        let (settings, settings_problem) = match store.as_ref().map(|s| s.load()) {
            Some(Loaded::Ok(s)) => (*s, None),
            Some(Loaded::Corrupt { reason }) => (Settings::default(), Some(reason)),
            None => (Settings::default(), None),
        };
        let notifier = opts.notifier.or_else(|| match DesktopNotifier::start() {
            Ok(n) => Some(Box::new(n) as Box<dyn Notify>),
            Err(e) => {
                tracing::warn!("no notification thread: {e}");
                None
            }
        });
        let screen = screen.unwrap_or_else(|| match &settings.display_name {
            None => Screen::Onboarding(onboarding::Onboarding::default()),
            Some(_) => Screen::Connect(connect::ConnectForm::from_settings(&settings)),
        });
        let mut app = Self {
            profile,
            store,
            settings,
            settings_problem,
            settings_problem_dismissed: false,
            settings_error: None,
            screen,
            core: None,
            launch: None,
            model: Model::default(),
            view: ViewState::default(),
            clock: opts.clock,
            utc_offset: opts.utc_offset,
            notifier,
            pickers: Pickers::default(),
            stopping: Vec::new(),
            started: opts.started,
            first_frame: true,
            applied_theme: None,
            ringer: crate::core::Ringer::new(),
            tiles: {
                // Each picture published wakes the window: it redraws at the video's rate
                // while video comes, and not otherwise.
                let repaint = ctx.clone();
                crate::core::Tiles::new(Box::new(move || repaint.request_repaint()))
            },
        };
        if let (Some(join), Screen::Connect(form)) = (opts.autojoin, &mut app.screen) {
            form.mode = connect::Mode::Join;
            // An invitation without a password waits on the form for the user to type it.
            let needs_password = join.password.is_empty()
                && crate::core::Invitation::parse(&join.addr).is_ok_and(|i| i.password.is_none());
            form.join_addr = join.addr;
            form.join_room = join.room;
            form.join_password = join.password;
            if !needs_password {
                let mut out = Actions::default();
                connect::join(form, false, &mut out);
                app.apply(ctx, out);
            }
        }
        app
    }

    /// The model the views draw (tests read it).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The latest-frame slots this window draws (for screenshots and tests that publish
    /// pictures without a call).
    #[doc(hidden)]
    pub fn tiles(&self) -> &Arc<crate::core::Tiles> {
        &self.tiles
    }

    /// Pictures uploaded for a tile so far and the last one's size as it came (for tests:
    /// textures are not in the accessibility tree). `peer` is a fingerprint; None is our
    /// self-view.
    pub fn video_uploads(&self, peer: Option<&str>) -> Option<(u64, [usize; 2])> {
        self.view.video.uploads(&Self::tile_key(peer)?)
    }

    /// The size of a tile's texture: the picture, halved for a small tile (for tests and the
    /// benchmark).
    pub fn video_texture_size(&self, peer: Option<&str>) -> Option<[usize; 2]> {
        self.view.video.texture_size(&Self::tile_key(peer)?)
    }

    fn tile_key(peer: Option<&str>) -> Option<crate::core::TileKey> {
        Some(match peer {
            None => crate::core::TileKey::Me,
            Some(fp) => crate::core::TileKey::Peer(crate::core::Fingerprint::parse(fp)?),
        })
    }

    /// The size of a transfer's thumbnail, once decoded (for tests: textures are not in the
    /// accessibility tree).
    pub fn thumbnail_size(&self, transfer: &str) -> Option<[usize; 2]> {
        self.view.thumbs.ready(transfer)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn screen_name(&self) -> &'static str {
        match self.screen {
            Screen::Broken(_) => "broken",
            Screen::Onboarding(_) => "onboarding",
            Screen::Connect(_) => "connect",
            Screen::Main => "main",
        }
    }

    /// Shows the main window for a model built from `events`, with no core behind it: for
    /// screenshots and visual tests of the real views.
    #[doc(hidden)]
    pub fn show_fixture(&mut self, events: Vec<ClientEvent>, room: &str) {
        let now = (self.clock)();
        for ev in events {
            self.model.apply(ev, Some(room), now);
        }
        self.view.room = Some(room.to_string());
        self.screen = Screen::Main;
    }

    /// The connect screen's current problem, in words (for tests and diagnostics).
    pub fn problem(&self) -> Option<String> {
        match &self.screen {
            Screen::Connect(form) => {
                form.problem.as_ref().map(|p| format!("{}: {} ({})", p.title, p.advice, p.detail))
            }
            _ => None,
        }
    }

    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// Writes the settings; a failure is shown, and the in-memory settings stay in use.
    fn save_settings(&mut self) {
        if self.settings_problem.is_some() {
            // Never overwrite a file the user has not agreed to replace.
            return;
        }
        if let Some(store) = &self.store {
            self.settings_error = store.save(&self.settings).err();
        }
    }

    fn reset_settings(&mut self) {
        if let Some(store) = &self.store {
            match store.reset() {
                Ok(s) => {
                    self.settings = s;
                    self.settings_problem = None;
                    self.screen = Screen::Onboarding(onboarding::Onboarding::default());
                }
                Err(e) => self.settings_error = Some(e),
            }
        }
    }

    /// Starts the core for `launch`; the connect screen shows progress until `ready`.
    fn start_core(&mut self, ctx: &egui::Context, launch: Launch, accept_new_hub_key: bool) {
        let Some(profile) = self.profile.clone() else { return };
        self.stop_core();
        self.model = Model::default();
        self.view = ViewState { expiry: self.view.expiry, ..ViewState::default() };
        let video = self.settings.video();
        // The camera is off at each start until the user turns it on.
        self.model.camera = super::model::CameraState {
            on: false,
            available: video.camera != crate::core::CameraChoice::None,
        };
        let opts = CoreOptions {
            profile: profile.clone(),
            name: self.settings.display_name.clone().unwrap_or_default(),
            password: launch.password.clone(),
            rooms: vec![launch.room.clone()],
            target: launch.target.clone(),
            accept_new_hub_key,
            link_port: Some(0),
            transfers: self.settings.transfer_config(CoreOptions::default_downloads(&profile)),
            ice: self.settings.ice_servers(),
            invitation: launch.invitation.clone(),
            auto_answer: false,
            mic: self
                .settings
                .microphone
                .clone()
                .map_or(crate::core::MicChoice::Default, crate::core::MicChoice::Device),
            speaker: self
                .settings
                .speaker
                .clone()
                .map_or(crate::core::SpeakerChoice::Default, crate::core::SpeakerChoice::Device),
            processing: self.settings.audio_processing(),
            video,
            camera_on: false,
            tiles: Some(Arc::clone(&self.tiles)),
        };
        let repaint = ctx.clone();
        let waker: crate::core::Waker = Arc::new(move || repaint.request_repaint());
        match CoreHandle::start(opts, Some(waker)) {
            Ok(core) => {
                // Settings asks this core for the sound devices.
                self.view.devices_asked = false;
                self.core = Some(core);
                self.model.connection = Some(Connection::Connecting);
                self.launch = Some(launch);
            }
            Err(e) => {
                let fatal = Fatal { code: "profile".into(), message: e.to_string() };
                if let Screen::Connect(form) = &mut self.screen {
                    form.failed(&fatal, None);
                }
            }
        }
    }

    /// Leaves the hub (and stops a hosted one). The wait for the core thread happens on a
    /// thread of its own: the window stays responsive even if the hub is slow to say goodbye.
    fn stop_core(&mut self) {
        if let Some(core) = self.core.take() {
            let stopping = std::thread::Builder::new().name("kith-stop".into()).spawn(move || {
                core.shutdown();
            });
            match stopping {
                Ok(handle) => self.stopping.push(handle),
                Err(e) => tracing::warn!("cannot stop the core in the background: {e}"),
            }
        }
        self.stopping.retain(|h| !h.is_finished());
    }

    /// At exit: give the cores a moment to leave their hubs cleanly, but never hang.
    fn wait_stopped(&mut self) {
        let deadline = Instant::now() + EXIT_GRACE;
        while self.stopping.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Queues a command; a full or stopped core is a notice, never a wait.
    fn command(&mut self, cmd: ClientCommand) -> bool {
        match self.core.as_ref().map(|c| c.send(cmd)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                self.model.notices.push(e);
                false
            }
            None => false,
        }
    }

    /// Drains the core's events into the model, and reacts to the ones that change screens.
    fn pump(&mut self, ctx: &egui::Context) {
        let Some(core) = self.core.as_mut() else { return };
        let focused = ctx.input(|i| i.focused);
        let viewing =
            if focused && matches!(self.screen, Screen::Main) { self.view.room.clone() } else { None };
        let now = (self.clock)();
        let mut drained = 0;
        while drained < EVENTS_PER_FRAME {
            let Some(ev) = core.try_recv() else { break };
            drained += 1;
            let incoming = self.model.apply(ev, viewing.as_deref(), now);
            if let Some(inc) = incoming
                && !focused
                && self.settings.notifications
                && let Some(n) = &self.notifier
            {
                let title = if inc.room.is_empty() {
                    format!("File from {}", inc.name)
                } else {
                    format!("{} in #{}", inc.name, inc.room)
                };
                n.notify(&title, &inc.text);
            }
        }
        if drained == EVENTS_PER_FRAME {
            ctx.request_repaint();
        }
        if let Some(room) = self.view.joining.take_if(|r| self.model.room(r).is_some_and(|r| r.joined)) {
            self.view.room = Some(room);
            self.view.focus_composer = true;
        }
        if let Some(fatal) = self.model.fatal.take() {
            self.on_fatal(fatal);
        } else if matches!(self.screen, Screen::Connect(_))
            && self.model.connection == Some(Connection::Online)
        {
            self.on_ready();
        }
        if drained > 0 && !focused {
            let unread = self.model.total_unread();
            let title = if unread > 0 { format!("Kith ({unread})") } else { "Kith".to_string() };
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title));
        }
    }

    fn on_ready(&mut self) {
        let Some(launch) = self.launch.clone() else { return };
        if let Target::Hub(_) = launch.target {
            self.settings.remember_hub(RecentHub { addr: launch.label.clone(), room: launch.room.clone() });
            self.settings.default_hub = launch.label.clone();
            self.save_settings();
        }
        self.view.room = Some(launch.room.clone());
        self.view.focus_composer = true;
        // A new host's first question is what to tell friends.
        self.view.invite_open = matches!(launch.target, Target::Host { .. });
        self.screen = Screen::Main;
    }

    fn on_fatal(&mut self, fatal: Fatal) {
        self.stop_core();
        self.model.connection = None;
        let mut form = match std::mem::replace(&mut self.screen, Screen::Main) {
            Screen::Connect(form) => form,
            _ => connect::ConnectForm::from_settings(&self.settings),
        };
        form.failed(&fatal, self.launch.as_ref());
        self.screen = Screen::Connect(form);
    }

    /// Does what the views asked for this frame, in order.
    fn apply(&mut self, ctx: &egui::Context, mut actions: Actions) {
        for action in actions.take() {
            self.apply_one(ctx, action);
        }
    }

    fn apply_one(&mut self, ctx: &egui::Context, action: UiAction) {
        match action {
            UiAction::Command(cmd) => {
                self.command(cmd);
            }
            UiAction::Send { room, text, expires_in_s } => {
                let tag = self.model.outgoing(&room, &text, self.now_ms(), expires_in_s);
                let cmd = ClientCommand::Send { room, text, expires_in_s, tag: Some(tag.clone()) };
                if let Some(Err(e)) = self.core.as_ref().map(|c| c.send(cmd)) {
                    self.model.fail_send(&tag, &e);
                }
            }
            UiAction::JoinRoom(room) => {
                // Shown once joined: the hub may not have that room (D25).
                if self.command(ClientCommand::Join { room: room.clone() }) {
                    self.view.joining = Some(room);
                }
            }
            UiAction::MarkRead(room) => self.model.mark_read(&room),
            UiAction::SendFiles { to, paths } => self.send_files(&to, paths),
            UiAction::PickFiles { to, title } => self.pickers.pick_files(ctx, to, title),
            UiAction::PickDownloadsFolder => self.pickers.pick_folder(ctx, "Save received files in".into()),
            UiAction::Notice(text) => self.model.notices.push(text),
            UiAction::DismissNotice(i) => {
                if i < self.model.notices.len() {
                    self.model.notices.remove(i);
                }
            }
            UiAction::ClearFinishedFiles => self.model.files.clear_finished(),
            UiAction::Host { launch, port } => {
                self.settings.host_port = port;
                self.settings.host_room = launch.room.clone();
                self.save_settings();
                self.start_core(ctx, launch, false);
            }
            UiAction::Join { launch, accept_new_hub_key } => self.start_core(ctx, launch, accept_new_hub_key),
            UiAction::CancelConnect => {
                self.stop_core();
                self.model = Model::default();
            }
            UiAction::CreateIdentity { name } => self.create_identity(name),
            UiAction::FinishOnboarding => {
                self.screen = Screen::Connect(connect::ConnectForm::from_settings(&self.settings));
            }
            UiAction::Settings { settings, save } => {
                self.settings = *settings;
                if save {
                    self.save_settings();
                }
            }
            UiAction::ResetSettings => self.reset_settings(),
            UiAction::KeepBrokenSettings => self.settings_problem_dismissed = true,
        }
    }

    /// Creates (or loads) the identity for the name onboarding chose.
    fn create_identity(&mut self, name: String) {
        let Screen::Onboarding(state) = &mut self.screen else { return };
        let Some(profile) = &self.profile else { return };
        match profile.identity() {
            Ok(keys) => {
                state.created(name.clone(), IdentityKey::from(&keys.public).fingerprint().grouped());
                self.settings.display_name = Some(name);
                self.save_settings();
            }
            Err(e) => state.error = Some(e.to_string()),
        }
    }

    /// Offers every file to every recipient; each pair is a transfer of its own.
    fn send_files(&mut self, to: &Recipients, paths: Vec<std::path::PathBuf>) {
        let ready = |p: &&super::model::Peer| p.secure && !p.identity_changed;
        let peers: Vec<String> = match to {
            Recipients::Room(room) => self
                .model
                .members(room)
                .into_iter()
                .filter(|p| p.online())
                .filter(ready)
                .map(|p| p.fingerprint.clone())
                .collect(),
            Recipients::Peer(fp) => {
                self.model.peers.get(fp).filter(ready).map(|p| p.fingerprint.clone()).into_iter().collect()
            }
        };
        if peers.is_empty() {
            let whom = match to {
                Recipients::Room(room) => format!("nobody in #{room} is"),
                Recipients::Peer(fp) => {
                    format!("{} is not", self.model.peers.get(fp).map_or("that person", |p| &p.name))
                }
            };
            self.model.notices.push(format!(
                "Not sent: {whom} connected with an encrypted session right now (or a changed \
                 identity waits for your review)."
            ));
            return;
        }
        for path in paths.into_iter().filter(|p| !p.is_dir()) {
            for peer in &peers {
                self.command(ClientCommand::SendFile {
                    peer: peer.clone(),
                    path: path.display().to_string(),
                });
            }
        }
    }

    /// Acts on what a file dialog returned.
    fn take_picked(&mut self) {
        while let Some(picked) = self.pickers.take() {
            match picked {
                Picked::Files { to, paths } => self.send_files(&to, paths),
                Picked::Folder(dir) => {
                    self.settings.downloads = Some(dir.display().to_string());
                    self.save_settings();
                }
                Picked::Nothing { quick: true } => self.model.notices.push(
                    "No file dialog could open on this desktop (it needs an XDG desktop portal or \
                     zenity). Drag files onto the window instead."
                        .into(),
                ),
                Picked::Nothing { quick: false } => {}
            }
        }
    }

    fn apply_theme(&mut self, ctx: &egui::Context) {
        if self.applied_theme != Some(self.settings.theme) {
            ctx.set_theme(self.settings.theme.preference());
            self.applied_theme = Some(self.settings.theme);
        }
    }
}

impl eframe::App for KithApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.apply_theme(ctx);
        self.pump(ctx);
        self.take_picked();
        let now = (self.clock)();
        self.model.sweep_expired(now);
        let ringing = self.model.calls.values().any(|c| c.phase == super::model::CallPhase::Ringing);
        self.ringer.set(ringing);
        if let Some(at) = self.model.next_expiry() {
            ctx.request_repaint_after(std::time::Duration::from_millis(at.saturating_sub(now).max(1)));
        }
        if ctx.input(|i| i.focused)
            && let Some(room) = self.view.room.clone()
            && matches!(self.screen, Screen::Main)
            && self.model.room(&room).is_some_and(|r| r.unread > 0)
        {
            self.model.mark_read(&room);
            ctx.send_viewport_cmd(egui::ViewportCommand::Title("Kith".into()));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.view.video.update(&ctx, &self.tiles);
        let mut out = Actions::default();
        let frame = Frame {
            model: &self.model,
            now_ms: (self.clock)(),
            utc_offset: self.utc_offset,
            settings: &self.settings,
            settings_error: self.settings_error.as_deref(),
            picker_open: self.pickers.is_open(),
            host_password: self
                .launch
                .as_ref()
                .filter(|l| matches!(l.target, Target::Host { .. }))
                .map(|l| l.password.as_str()),
            mic_level_db: self.core.as_ref().and_then(|c| c.mic_level_db()),
        };
        match &mut self.screen {
            Screen::Broken(why) => {
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.heading("Kith cannot open its profile");
                    ui.label(why.as_str());
                    ui.label("Fix the folder's permissions or start Kith with --profile DIR.");
                });
            }
            Screen::Onboarding(state) => onboarding::show(ui, state, &mut out),
            Screen::Connect(form) => connect::show(ui, form, &frame, &mut out),
            Screen::Main => main_view::show(ui, &ctx, &frame, &mut self.view, &mut out),
        }
        if let Some(reason) = self.settings_problem.as_deref()
            && !self.settings_problem_dismissed
        {
            let path = self.store.as_ref().map(|s| s.path().display().to_string()).unwrap_or_default();
            settings_view::corrupt_dialog(&ctx, &path, reason, &mut out);
        }
        self.apply(&ctx, out);
        if self.first_frame {
            self.first_frame = false;
            if let Some(t) = self.started {
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(ms, "first frame");
                if std::env::var_os("KITH_REPORT_STARTUP").is_some() {
                    println!("{{\"event\":\"first_frame\",\"ms\":{ms:.1}}}");
                }
            }
        }
    }

    fn on_exit(&mut self) {
        if self.view.settings_dirty {
            self.save_settings();
        }
        self.stop_core();
        self.wait_stopped();
    }
}

impl Drop for KithApp {
    fn drop(&mut self) {
        self.stop_core();
        self.wait_stopped();
    }
}

/// How long closing the window waits for the core to leave the hub.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
