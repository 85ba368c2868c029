//! The app's settings: one JSON file in the profile directory, written atomically.
//!
//! A file that exists but does not parse is not silently replaced: the app says what is wrong
//! and resets it to defaults only when the user agrees (the broken file is kept beside it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::write_atomic;

pub const SETTINGS_FILE: &str = "settings.json";
const MIB: u64 = 1024 * 1024;
/// Recent hubs kept on the Join screen.
pub const MAX_RECENT_HUBS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Dark,
    Light,
    #[default]
    System,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Dark, Theme::Light];

    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "Follow system",
            Theme::Dark => "Dark",
            Theme::Light => "Light",
        }
    }

    pub fn preference(self) -> egui::ThemePreference {
        match self {
            Theme::System => egui::ThemePreference::System,
            Theme::Dark => egui::ThemePreference::Dark,
            Theme::Light => egui::ThemePreference::Light,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentHub {
    pub addr: String,
    pub room: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub version: u32,
    /// None until onboarding picked one.
    pub display_name: Option<String>,
    pub theme: Theme,
    /// Pre-filled on the Join screen.
    pub default_hub: String,
    pub recent_hubs: Vec<RecentHub>,
    pub notifications: bool,
    pub host_port: u16,
    pub host_room: String,
    pub stun_servers: Vec<String>,
    /// `turn:USER:PASS@HOST:PORT`, relays for direct links no direct path can carry.
    pub turn_servers: Vec<String>,
    /// Where received files are saved; None is the user's downloads folder.
    pub downloads: Option<String>,
    /// Offers of larger files are declined without asking (MiB).
    pub max_file_mib: u64,
    /// Chosen devices, by name; the calls issue fills the lists these pick from.
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    /// None is the system's camera; `test-pattern` and `none` as `--camera` spells them.
    pub camera: Option<String>,
    /// What the camera sends: `WxH`, and frames per second.
    pub camera_size: String,
    pub camera_fps: u32,
    /// The microphone's processing in calls.
    pub echo_cancel: bool,
    pub noise_suppression: bool,
    pub auto_gain: bool,
    /// In a call the microphone sends only while this key is held (and the window has focus).
    pub push_to_talk: bool,
    /// The key's name as egui spells it (`egui::Key::name`).
    pub push_to_talk_key: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            version: 1,
            display_name: None,
            theme: Theme::System,
            default_hub: String::new(),
            recent_hubs: Vec::new(),
            notifications: true,
            host_port: 7447,
            host_room: "general".into(),
            stun_servers: vec!["stun.l.google.com:19302".into(), "stun.cloudflare.com:3478".into()],
            turn_servers: Vec::new(),
            downloads: None,
            max_file_mib: crate::core::DEFAULT_MAX_FILE_SIZE / MIB,
            microphone: None,
            speaker: None,
            camera: None,
            camera_size: "1280x720".into(),
            camera_fps: 30,
            echo_cancel: true,
            noise_suppression: true,
            auto_gain: true,
            push_to_talk: false,
            push_to_talk_key: DEFAULT_PUSH_TO_TALK_KEY.name().to_string(),
        }
    }
}

/// Push-to-talk's key unless the user picks another: one that types nothing and that no
/// system shortcut takes.
pub const DEFAULT_PUSH_TO_TALK_KEY: egui::Key = egui::Key::F9;

/// Keys push-to-talk can use: they type nothing into the chat while held.
pub const PUSH_TO_TALK_KEYS: [egui::Key; 15] = [
    egui::Key::F1,
    egui::Key::F2,
    egui::Key::F3,
    egui::Key::F4,
    egui::Key::F5,
    egui::Key::F6,
    egui::Key::F7,
    egui::Key::F8,
    egui::Key::F9,
    egui::Key::F10,
    egui::Key::F11,
    egui::Key::F12,
    egui::Key::Insert,
    egui::Key::Home,
    egui::Key::End,
];

impl Settings {
    /// Push-to-talk's key, if push-to-talk is on (an unknown name falls back to the default).
    pub fn push_to_talk_key(&self) -> Option<egui::Key> {
        self.push_to_talk
            .then(|| egui::Key::from_name(&self.push_to_talk_key).unwrap_or(DEFAULT_PUSH_TO_TALK_KEY))
    }

    pub fn audio_processing(&self) -> crate::core::AudioProcessing {
        crate::core::AudioProcessing {
            echo_cancel: self.echo_cancel,
            noise_suppression: self.noise_suppression,
            auto_gain: self.auto_gain,
        }
    }

    /// The camera calls use, as chosen; a size or rate that does not parse (a hand-edited
    /// file) falls back to the default's.
    pub fn video(&self) -> crate::core::VideoSettings {
        let default = crate::core::VideoSettings::default();
        let camera = self.camera.as_deref().unwrap_or("default");
        default.with(camera, Some(&self.camera_size), Some(self.camera_fps)).unwrap_or_else(|_| {
            crate::core::VideoSettings { camera: camera.parse().unwrap_or(default.camera.clone()), ..default }
        })
    }

    /// The servers the direct links use; TURN entries that do not parse are left out (the
    /// settings view says why).
    pub fn ice_servers(&self) -> crate::core::IceServers {
        crate::core::IceServers {
            stun: self.stun_servers.clone(),
            turn: self.turn_servers.iter().filter_map(|t| t.parse().ok()).collect(),
        }
    }
    /// How received files are handled: saved in the chosen folder (or `default_downloads`),
    /// up to the chosen size, each one accepted by the user.
    pub fn transfer_config(&self, default_downloads: PathBuf) -> crate::core::TransferConfig {
        let downloads = match self.downloads.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => default_downloads,
        };
        crate::core::TransferConfig {
            downloads,
            auto_accept: false,
            max_size: self.max_file_mib.saturating_mul(MIB),
        }
    }

    /// Moves `hub` to the front of the recent list.
    pub fn remember_hub(&mut self, hub: RecentHub) {
        self.recent_hubs.retain(|h| h.addr != hub.addr);
        self.recent_hubs.insert(0, hub);
        self.recent_hubs.truncate(MAX_RECENT_HUBS);
    }
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    Ok(Box<Settings>),
    /// The file is there but unusable; the app runs on defaults until the user decides.
    Corrupt {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct SettingsStore {
    path: PathBuf,
}

impl SettingsStore {
    pub fn in_dir(dir: &Path) -> Self {
        Self { path: dir.join(SETTINGS_FILE) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Loaded {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => Loaded::Ok(Box::new(s)),
                Err(e) => Loaded::Corrupt { reason: e.to_string() },
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Ok(Box::default()),
            Err(e) => Loaded::Corrupt { reason: e.to_string() },
        }
    }

    pub fn save(&self, settings: &Settings) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(settings).map_err(|e| e.to_string())?;
        write_atomic(&self.path, &bytes).map_err(|e| e.to_string())
    }

    /// The user agreed to start over: keep the broken file as `settings.json.broken`, write
    /// defaults.
    pub fn reset(&self) -> Result<Settings, String> {
        let aside = self.path.with_extension("json.broken");
        std::fs::rename(&self.path, &aside)
            .map_err(|e| format!("cannot move {} aside: {e}", self.path.display()))?;
        let fresh = Settings::default();
        self.save(&fresh)?;
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fills_missing_fields_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::in_dir(dir.path());
        let mut s = Settings { display_name: Some("ana".into()), theme: Theme::Light, ..Default::default() };
        s.remember_hub(RecentHub { addr: "a:1".into(), room: "general".into() });
        store.save(&s).unwrap();
        assert!(matches!(store.load(), Loaded::Ok(got) if *got == s));
        std::fs::write(store.path(), br#"{"display_name":"bo"}"#).unwrap();
        let Loaded::Ok(partial) = store.load() else { panic!("partial file should load") };
        assert_eq!(partial.display_name.as_deref(), Some("bo"));
        assert_eq!(partial.host_port, 7447);
    }

    #[test]
    fn corrupt_file_is_reported_and_kept_until_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::in_dir(dir.path());
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Loaded::Corrupt { .. }));
        // Loading twice does not touch it.
        assert_eq!(std::fs::read(store.path()).unwrap(), b"{not json");
        let fresh = store.reset().unwrap();
        assert_eq!(fresh, Settings::default());
        assert_eq!(std::fs::read(dir.path().join("settings.json.broken")).unwrap(), b"{not json");
        assert!(matches!(store.load(), Loaded::Ok(_)));
    }

    #[test]
    fn recent_hubs_are_unique_most_recent_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..20 {
            s.remember_hub(RecentHub { addr: format!("h{}", i % 10), room: "r".into() });
        }
        assert_eq!(s.recent_hubs.len(), MAX_RECENT_HUBS);
        assert_eq!(s.recent_hubs[0].addr, "h9");
        s.remember_hub(RecentHub { addr: "h5".into(), room: "r".into() });
        assert_eq!(s.recent_hubs[0].addr, "h5");
        assert_eq!(s.recent_hubs.iter().filter(|h| h.addr == "h5").count(), 1);
    }
}
