//! Desktop notifications for messages that arrive while the window is not focused.
//!
//! Showing one talks to the session bus (or the OS), which can stall: it happens on its own
//! thread, fed through a small queue, and a full queue drops the notification, never the UI.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Where notifications go; tests record them instead of showing them.
pub trait Notify {
    fn notify(&self, title: &str, body: &str);
}

/// Queued notifications before new ones are dropped.
const QUEUE: usize = 8;
/// Longest body shown; the rest is in the app.
const MAX_BODY_CHARS: usize = 160;

pub struct DesktopNotifier {
    queue: SyncSender<(String, String)>,
}

impl DesktopNotifier {
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<(String, String)>(QUEUE);
        std::thread::Builder::new().name("kith-notify".into()).spawn(move || {
            let mut warned = false;
            for (title, body) in rx {
                let shown = notify_rust::Notification::new()
                    .appname("Kith")
                    .summary(&title)
                    .body(&body)
                    .icon("kith")
                    .show();
                if let Err(e) = shown
                    && !warned
                {
                    // No notification service (a bare X server, say): say so once.
                    tracing::warn!("desktop notifications unavailable: {e}");
                    warned = true;
                }
            }
        })?;
        Ok(Self { queue: tx })
    }
}

impl Notify for DesktopNotifier {
    fn notify(&self, title: &str, body: &str) {
        let body: String = if body.chars().count() > MAX_BODY_CHARS {
            body.chars().take(MAX_BODY_CHARS).chain(std::iter::once('…')).collect()
        } else {
            body.to_string()
        };
        if let Err(TrySendError::Full(_)) = self.queue.try_send((title.to_string(), body)) {
            tracing::debug!("notification dropped: queue full");
        }
    }
}
