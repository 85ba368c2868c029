//! The eframe application: which screen is up, the core it talks to, and the settings.
//!
//! The UI thread only ever polls the core's event queue and queues commands; the core wakes it
//! with `request_repaint` when something arrives, so an idle window draws nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use super::model::{Connection, Fatal, Model};
use super::notify::{DesktopNotifier, Notify};
use super::settings::{Loaded, RecentHub, Settings, SettingsStore};
use super::{connect, main_view, onboarding};
use crate::core::Profile;
use crate::core::{CoreHandle, CoreOptions, Target};
use crate::protocol::events::ClientCommand;

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

/// Per-window view state that is not the model: selection, drafts, open dialogs.
#[derive(Default)]
pub struct ViewState {
    pub room: Option<String>,
    pub drafts: std::collections::HashMap<String, String>,
    /// Seconds, None for messages that do not expire.
    pub expiry: Option<u64>,
    /// The peer whose fingerprint dialog is open.
    pub dialog: Option<String>,
    pub settings_open: bool,
    pub invite_open: bool,
    pub new_room: String,
    /// The display name being edited in Settings.
    pub name_draft: Option<String>,
    pub stun_draft: Option<String>,
    /// Typed settings not yet written.
    pub settings_dirty: bool,
    pub focus_composer: bool,
}

/// How the core was started, to start it again (e.g. after trusting a changed hub key).
#[derive(Clone)]
pub struct Launch {
    pub target: Target,
    pub password: Zeroizing<String>,
    pub room: String,
    /// What the user typed, for the recent list and messages.
    pub label: String,
}

pub struct KithApp {
    pub(super) profile: Option<Profile>,
    pub(super) store: Option<SettingsStore>,
    pub(super) settings: Settings,
    /// Why the settings file could not be read; the user decides to reset it.
    pub(super) settings_problem: Option<String>,
    pub(super) settings_problem_dismissed: bool,
    pub(super) settings_error: Option<String>,
    pub(super) screen: Screen,
    pub(super) core: Option<CoreHandle>,
    pub(super) launch: Option<Launch>,
    pub(super) model: Model,
    pub(super) view: ViewState,
    pub(super) clock: Clock,
    pub(super) utc_offset: Option<chrono::FixedOffset>,
    pub(super) pickers: super::files_view::Pickers,
    pub(super) thumbs: super::thumbnails::Thumbnails,
    notifier: Option<Box<dyn Notify>>,
    /// Cores being stopped in the background.
    stopping: Vec<std::thread::JoinHandle<()>>,
    started: Option<Instant>,
    first_frame: bool,
    applied_theme: Option<super::settings::Theme>,
}

impl KithApp {
    pub fn new(ctx: &egui::Context, opts: AppOptions) -> Self {
        super::style::install(ctx);
        let profile = Profile::open(opts.profile_dir.as_deref());
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
            pickers: Default::default(),
            thumbs: Default::default(),
            stopping: Vec::new(),
            started: opts.started,
            first_frame: true,
            applied_theme: None,
        };
        if let (Some(join), Screen::Connect(form)) = (opts.autojoin, &mut app.screen) {
            form.mode = connect::Mode::Join;
            form.join_addr = join.addr;
            form.join_room = join.room;
            form.join_password = join.password;
            connect::join(&mut app, ctx, false);
        }
        app
    }

    /// The model the views draw (tests read it).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The size of a transfer's thumbnail, once decoded (for tests: textures are not in the
    /// accessibility tree).
    pub fn thumbnail_size(&self, transfer: &str) -> Option<[usize; 2]> {
        self.thumbs.ready(transfer)
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
    pub fn show_fixture(&mut self, events: Vec<crate::protocol::events::ClientEvent>, room: &str) {
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
    pub(super) fn save_settings(&mut self) {
        if self.settings_problem.is_some() {
            // Never overwrite a file the user has not agreed to replace.
            return;
        }
        if let Some(store) = &self.store {
            self.settings_error = store.save(&self.settings).err();
        }
    }

    pub(super) fn reset_settings(&mut self) {
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
    pub(super) fn start_core(&mut self, ctx: &egui::Context, launch: Launch, accept_new_hub_key: bool) {
        let Some(profile) = self.profile.clone() else { return };
        self.stop_core();
        self.model = Model::default();
        self.view = ViewState { expiry: self.view.expiry, ..ViewState::default() };
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
        };
        let repaint = ctx.clone();
        let waker: crate::core::Waker = Arc::new(move || repaint.request_repaint());
        match CoreHandle::start(opts, Some(waker)) {
            Ok(core) => {
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
    pub(super) fn stop_core(&mut self) {
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
    pub(super) fn command(&mut self, cmd: ClientCommand) -> bool {
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
        let now = (self.clock)();
        self.model.sweep_expired(now);
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
        match &self.screen {
            Screen::Broken(why) => {
                let why = why.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.heading("Kith cannot open its profile");
                    ui.label(why);
                    ui.label("Fix the folder's permissions or start Kith with --profile DIR.");
                });
            }
            Screen::Onboarding(_) => onboarding::show(self, ui),
            Screen::Connect(_) => connect::show(self, ui, &ctx),
            Screen::Main => main_view::show(self, ui, &ctx),
        }
        if self.settings_problem.is_some() {
            super::settings_view::corrupt_dialog(self, &ctx);
        }
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
