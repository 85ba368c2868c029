//! Native file dialogs, each on a thread of its own: on some platforms they block until
//! closed, and the window must keep drawing meanwhile.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::actions::Recipients;

/// A file dialog that answers faster than a person can click never opened: on Linux without
/// an XDG desktop portal (or zenity), rfd returns "nothing picked" at once.
const NO_DIALOG: Duration = Duration::from_millis(300);

pub enum Picked {
    Files {
        to: Recipients,
        paths: Vec<PathBuf>,
    },
    Folder(PathBuf),
    /// The dialog was closed without a choice; `quick` when it never showed.
    Nothing {
        quick: bool,
    },
}

/// At most one dialog at a time; its answer comes back through [`Pickers::take`].
pub struct Pickers {
    tx: mpsc::Sender<Picked>,
    rx: mpsc::Receiver<Picked>,
    open: bool,
}

impl Default for Pickers {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Self { tx, rx, open: false }
    }
}

impl Pickers {
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn pick_files(&mut self, ctx: &egui::Context, to: Recipients, title: String) {
        self.spawn(ctx, move || {
            let handles =
                futures::executor::block_on(rfd::AsyncFileDialog::new().set_title(title).pick_files());
            let paths: Vec<PathBuf> =
                handles.unwrap_or_default().iter().map(|h| h.path().to_path_buf()).collect();
            (!paths.is_empty()).then_some(Picked::Files { to, paths })
        });
    }

    pub fn pick_folder(&mut self, ctx: &egui::Context, title: String) {
        self.spawn(ctx, move || {
            let handle =
                futures::executor::block_on(rfd::AsyncFileDialog::new().set_title(title).pick_folder());
            handle.map(|h| Picked::Folder(h.path().to_path_buf()))
        });
    }

    /// What a dialog answered, if one did since the last call (cheap when none did).
    pub fn take(&mut self) -> Option<Picked> {
        let picked = self.rx.try_recv().ok()?;
        self.open = false;
        Some(picked)
    }

    fn spawn(&mut self, ctx: &egui::Context, dialog: impl FnOnce() -> Option<Picked> + Send + 'static) {
        if self.open {
            return;
        }
        let (tx, ctx) = (self.tx.clone(), ctx.clone());
        let spawned = std::thread::Builder::new().name("kith-file-dialog".into()).spawn(move || {
            let started = Instant::now();
            let picked = dialog().unwrap_or(Picked::Nothing { quick: started.elapsed() < NO_DIALOG });
            let _ = tx.send(picked);
            ctx.request_repaint();
        });
        match spawned {
            Ok(_) => self.open = true,
            Err(e) => tracing::warn!("cannot open a file dialog: {e}"),
        }
    }
}
