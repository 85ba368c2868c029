//! Profile files written off the network loop: an atomic write with fsync can take tens of
//! milliseconds (much longer on a slow disk), and the loop that reads the link socket must
//! not wait for it.
//!
//! Known peers go through a `watch` channel, so a burst of sessions (each one asks for a save)
//! costs one write of the latest state, not one per session; hub pins are rare and queued.
//! Writes happen one at a time, in order, on Tokio's blocking pool.

use tokio::sync::{mpsc, watch};

use super::profile::Profile;
use crate::protocol::identity::IdentityKey;
use crate::protocol::trust::KnownPeers;

pub struct ProfileWriter {
    peers: watch::Sender<Option<KnownPeers>>,
    pins: mpsc::Sender<(String, IdentityKey)>,
    task: tokio::task::JoinHandle<()>,
}

/// How many hub pins may wait for the disk (one per connection at most).
const PIN_QUEUE: usize = 16;

impl ProfileWriter {
    /// Starts the writer task; what fails is said on `problems`.
    pub fn spawn(profile: Profile, problems: mpsc::Sender<String>) -> Self {
        let (peers, peers_rx) = watch::channel(None);
        let (pins, pins_rx) = mpsc::channel(PIN_QUEUE);
        let task = tokio::spawn(write_loop(profile, peers_rx, pins_rx, problems));
        Self { peers, pins, task }
    }

    /// At shutdown: lets what is waiting reach the disk (within a bounded time).
    pub async fn finish(self, within: std::time::Duration) {
        let Self { peers, pins, task } = self;
        drop((peers, pins));
        let _ = tokio::time::timeout(within, task).await;
    }

    /// Saves the known peers (the latest state wins if writes pile up).
    pub fn save_known_peers(&self, known: KnownPeers) {
        self.peers.send_replace(Some(known));
    }

    /// Pins `key` for the hub the user calls `label`.
    pub fn pin_hub(&self, label: String, key: IdentityKey) -> Result<(), String> {
        self.pins.try_send((label, key)).map_err(|_| "too many hub pins waiting for the disk".to_string())
    }
}

async fn write_loop(
    profile: Profile,
    mut peers: watch::Receiver<Option<KnownPeers>>,
    mut pins: mpsc::Receiver<(String, IdentityKey)>,
    problems: mpsc::Sender<String>,
) {
    // At shutdown both senders go at once: each side is drained until it is closed *and*
    // empty, so a last save is never lost to the other closing first.
    let (mut peers_open, mut pins_open) = (true, true);
    while peers_open || pins_open {
        let profile = profile.clone();
        let written = tokio::select! {
            changed = peers.changed(), if peers_open => {
                if changed.is_err() {
                    peers_open = false;
                    continue;
                }
                let Some(known) = peers.borrow_and_update().clone() else { continue };
                tokio::task::spawn_blocking(move || profile.save_known_peers(&known).map_err(|e| e.to_string()))
                    .await
            }
            pin = pins.recv(), if pins_open => {
                let Some((label, key)) = pin else {
                    pins_open = false;
                    continue;
                };
                tokio::task::spawn_blocking(move || {
                    let mut all = profile.hub_pins()?;
                    all.hubs.insert(label, key);
                    profile.save_hub_pins(&all)
                })
                .await
                .map(|r| r.map_err(|e| e.to_string()))
            }
        };
        let problem = match written {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => format!("the profile writer failed: {e}"),
        };
        // The loop may be gone (shutting down): the problem is logged then.
        if problems.send(problem.clone()).await.is_err() {
            tracing::warn!("profile: {problem}");
        }
    }
}
