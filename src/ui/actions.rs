//! What the views ask for. A view reads the model, its own view state and a [`Frame`] of
//! read-only context, and pushes [`UiAction`]s; the app applies them once the frame is drawn.
//! So no view holds the app, the core or the settings store, and a view can be drawn and
//! clicked in a test with nothing behind it.

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::model::Model;
use super::settings::Settings;
use crate::core::{ClientCommand, Invitation, Target};

/// Who picked or dropped files go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Everyone in the room with a secure session.
    Room(String),
    /// One person, by fingerprint.
    Peer(String),
}

/// How the core was started, to start it again (e.g. after trusting a changed hub key).
#[derive(Clone)]
pub struct Launch {
    pub target: Target,
    pub password: Zeroizing<String>,
    pub room: String,
    /// What the user typed, for the recent list and messages.
    pub label: String,
    /// Joining with an invitation: its hub key is pinned and its inviter known.
    pub invitation: Option<Invitation>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Launch").field("target", &self.target).field("room", &self.room).finish()
    }
}

#[derive(Debug)]
pub enum UiAction {
    /// A command for the core as it is (verify, acknowledge, accept or decline a file…).
    Command(ClientCommand),
    /// Our message: shown at once as "sending", then handed to the core.
    Send {
        room: String,
        text: String,
        expires_in_s: Option<u64>,
    },
    /// Join (or create) a room and show it once the core took the command.
    JoinRoom(String),
    MarkRead(String),
    SendFiles {
        to: Recipients,
        paths: Vec<PathBuf>,
    },
    PickFiles {
        to: Recipients,
        title: String,
    },
    PickDownloadsFolder,
    Notice(String),
    DismissNotice(usize),
    ClearFinishedFiles,
    /// Host a hub here; `port` and the room are remembered as the next defaults.
    Host {
        launch: Launch,
        port: u16,
    },
    Join {
        launch: Launch,
        accept_new_hub_key: bool,
    },
    CancelConnect,
    CreateIdentity {
        name: String,
    },
    FinishOnboarding,
    /// The settings as edited; written to disk when `save` (typing waits for the field to
    /// lose focus, so an fsync does not follow every keystroke).
    Settings {
        settings: Box<Settings>,
        save: bool,
    },
    /// Replace a damaged settings file with defaults.
    ResetSettings,
    /// Go on with defaults and leave the damaged file alone.
    KeepBrokenSettings,
}

/// The actions of one frame, in the order the user caused them.
#[derive(Debug, Default)]
pub struct Actions(Vec<UiAction>);

impl Actions {
    pub fn push(&mut self, action: UiAction) {
        self.0.push(action);
    }

    pub fn command(&mut self, cmd: ClientCommand) {
        self.0.push(UiAction::Command(cmd));
    }

    pub fn take(&mut self) -> Vec<UiAction> {
        std::mem::take(&mut self.0)
    }
}

/// What the views read besides their own state; nothing here can be changed.
pub struct Frame<'a> {
    pub model: &'a Model,
    pub now_ms: u64,
    pub utc_offset: Option<chrono::FixedOffset>,
    pub settings: &'a Settings,
    /// Why the settings could not be written, if they could not.
    pub settings_error: Option<&'a str>,
    /// A file dialog is up; another cannot open.
    pub picker_open: bool,
    /// The password of the hub we host, for an invitation that includes it.
    pub host_password: Option<&'a str>,
    /// The microphone's level now (dBFS), while a call or Settings' test has it open.
    pub mic_level_db: Option<f32>,
}
