//! Per-window view state that is not the model: selection, drafts, open dialogs, and the
//! caches of what was drawn. Views change it freely; everything else they ask for with a
//! [`super::actions::UiAction`].

use std::collections::HashMap;

use super::chat;
use super::thumbnails::Thumbnails;
use super::video_tiles::VideoTiles;
use crate::core::TileKey;

#[derive(Default)]
pub struct ViewState {
    pub room: Option<String>,
    pub drafts: HashMap<String, String>,
    /// Seconds, None for messages that do not expire.
    pub expiry: Option<u64>,
    /// The peer whose fingerprint dialog is open.
    pub dialog: Option<String>,
    pub settings_open: bool,
    pub invite_open: bool,
    /// The invitation shown carries the hub's password.
    pub invite_with_password: bool,
    pub new_room: String,
    /// A room asked for and not joined yet: it is shown once the hub says it was joined.
    pub joining: Option<String>,
    /// The display name being edited in Settings.
    pub name_draft: Option<String>,
    /// Typed settings not yet written.
    pub settings_dirty: bool,
    pub focus_composer: bool,
    /// Laid-out chat rows, by room.
    pub chat_rows: HashMap<String, chat::Rows>,
    /// Decoded thumbnails of image transfers.
    pub thumbs: Thumbnails,
    /// In a call: our microphone is off, our speaker is off.
    pub muted: bool,
    pub deafened: bool,
    /// What the core was last told about our microphone (the user's mute, or push-to-talk's
    /// key not held); `None` before anything was said (the core starts unmuted).
    pub sent_muted: Option<bool>,
    /// Settings asked the core to open the microphone for its level meter.
    pub mic_testing: bool,
    /// Each person's volume in calls, in % (100 as sent).
    pub volumes: HashMap<String, u32>,
    /// Settings asked the core for the sound devices once.
    pub devices_asked: bool,
    /// The call's video textures, the tile shown large, and the stats overlay's switch.
    pub video: VideoTiles,
    pub focus: Option<TileKey>,
    pub video_stats: bool,
}
