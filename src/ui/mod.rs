//! The desktop app (eframe/egui): views that read the [`model::Model`] and push
//! [`actions::UiAction`]s, which [`app::KithApp`] applies after each frame (to the model, the
//! settings, or as commands to the core). Nothing here blocks or touches a socket.
//!
//! Views (`onboarding`, `connect`, `main_view`, `call_view`, `call_grid`, `chat`, `files_view`,
//! `fingerprint`, `settings_view`) depend on `actions`, `model`, `view` and `style`, never on
//! `app`. `video_tiles` keeps the textures of the call's video, uploaded from the video
//! threads' latest-frame slots.

pub mod actions;
pub mod app;
pub mod call_grid;
mod call_view;
mod chat;
mod connect;
pub mod files;
mod files_view;
mod fingerprint;
mod main_view;
pub mod model;
pub mod notify;
mod onboarding;
mod pickers;
pub mod runtime_libs;
pub mod settings;
mod settings_view;
mod style;
mod thumbnails;
pub mod video_tiles;
pub mod view;
#[cfg(test)]
mod view_tests;

use std::path::PathBuf;
use std::time::Instant;

pub use app::{AppOptions, KithApp};

/// The window icon, also installed as the desktop icon.
pub const ICON_PNG: &[u8] = include_bytes!("../../assets/icon-256.png");

/// Opens the window and runs until it is closed.
pub fn run(
    profile_dir: Option<PathBuf>,
    autojoin: Option<app::AutoJoin>,
    started: Instant,
) -> anyhow::Result<()> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Kith")
        .with_app_id("kith")
        .with_inner_size([1040.0, 700.0])
        .with_min_inner_size([640.0, 420.0]);
    match eframe::icon_data::from_png_bytes(ICON_PNG) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(e) => tracing::warn!("window icon: {e}"),
    }
    let missing = runtime_libs::missing();
    if !missing.is_empty() {
        anyhow::bail!(runtime_libs::explain(&missing));
    }
    let options = eframe::NativeOptions { viewport, ..Default::default() };
    let opts = AppOptions { profile_dir, autojoin, started: Some(started), ..AppOptions::default() };
    eframe::run_native("Kith", options, Box::new(move |cc| Ok(Box::new(KithApp::new(&cc.egui_ctx, opts)))))
        .map_err(|e| anyhow::anyhow!("cannot open a window: {e}"))
}
