//! File transfers as the window shows them, built only from the core's events (like
//! [`super::model`]): pure data, tested without a window.

use crate::core::ClientEvent;

/// Finished transfers kept on screen; older ones are dropped first.
const MAX_FINISHED: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Ours: being read and hashed before the offer goes out.
    Preparing,
    /// Offered and not yet accepted (by us, when incoming).
    Offered,
    /// Bytes are moving.
    Moving,
    /// Ours: the peer has it all and checked its hash. Theirs: saved at `path`, hash checked.
    Done,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: String,
    /// The other side's fingerprint.
    pub peer: String,
    pub incoming: bool,
    pub name: String,
    pub size: u64,
    pub bytes: u64,
    pub state: TransferState,
    /// The file on this machine: the one we send, or where a received one was saved.
    pub path: Option<String>,
    pub sha256: Option<String>,
    /// When bytes started moving, and how many had moved then (resumed transfers start part
    /// way), for the rate shown.
    pub moving_since: Option<(u64, u64)>,
    pub finished_at: Option<u64>,
}

impl Transfer {
    pub fn finished(&self) -> bool {
        matches!(self.state, TransferState::Done | TransferState::Failed { .. })
    }

    /// 0.0..=1.0 for a progress bar.
    pub fn fraction(&self) -> f32 {
        if self.size == 0 {
            return if self.state == TransferState::Done { 1.0 } else { 0.0 };
        }
        (self.bytes.min(self.size) as f64 / self.size as f64) as f32
    }

    /// Bytes per second since bytes started moving, once there is something to average.
    pub fn rate(&self, now_ms: u64) -> Option<f64> {
        let (since, from) = self.moving_since?;
        let end = self.finished_at.unwrap_or(now_ms);
        let ms = end.saturating_sub(since);
        (ms >= 200).then(|| self.bytes.saturating_sub(from) as f64 * 1000.0 / ms as f64)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Transfers {
    /// Oldest first.
    pub list: Vec<Transfer>,
}

impl Transfers {
    pub fn get(&self, id: &str) -> Option<&Transfer> {
        self.list.iter().find(|t| t.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Transfer> {
        self.list.iter_mut().find(|t| t.id == id)
    }

    /// Offers waiting for our answer.
    pub fn waiting_for_us(&self) -> usize {
        self.list.iter().filter(|t| t.incoming && t.state == TransferState::Offered).count()
    }

    pub fn clear_finished(&mut self) {
        self.list.retain(|t| !t.finished());
    }

    /// Applies a file event; false if `ev` is not about files.
    pub fn apply(&mut self, ev: &ClientEvent, now_ms: u64) -> bool {
        match ev {
            ClientEvent::FileSending { id, to, name, size, path } => {
                self.add(Transfer {
                    id: id.clone(),
                    peer: to.clone(),
                    incoming: false,
                    name: name.clone(),
                    size: *size,
                    bytes: 0,
                    state: TransferState::Preparing,
                    path: Some(path.clone()),
                    sha256: None,
                    moving_since: None,
                    finished_at: None,
                });
            }
            ClientEvent::FileOffered { id } => {
                if let Some(t) = self.get_mut(id).filter(|t| !t.finished()) {
                    t.state = TransferState::Offered;
                }
            }
            ClientEvent::FileOffer { id, from, name, size } => {
                self.add(Transfer {
                    id: id.clone(),
                    peer: from.clone(),
                    incoming: true,
                    name: name.clone(),
                    size: *size,
                    bytes: 0,
                    state: TransferState::Offered,
                    path: None,
                    sha256: None,
                    moving_since: None,
                    finished_at: None,
                });
            }
            ClientEvent::FileProgress { id, bytes, total } => {
                if let Some(t) = self.get_mut(id).filter(|t| !t.finished()) {
                    if t.state != TransferState::Moving {
                        t.moving_since = Some((now_ms, *bytes));
                    }
                    t.state = TransferState::Moving;
                    t.bytes = *bytes;
                    t.size = *total;
                }
            }
            ClientEvent::FileReceived { id, path, size, sha256, .. } => {
                if let Some(t) = self.get_mut(id) {
                    t.state = TransferState::Done;
                    t.bytes = *size;
                    t.size = *size;
                    t.path = Some(path.clone());
                    t.sha256 = Some(sha256.clone());
                    t.finished_at = Some(now_ms);
                }
                self.trim();
            }
            ClientEvent::FileSent { id, .. } => {
                if let Some(t) = self.get_mut(id) {
                    t.state = TransferState::Done;
                    t.bytes = t.size;
                    t.finished_at = Some(now_ms);
                }
                self.trim();
            }
            ClientEvent::FileFailed { id, reason } => {
                if let Some(t) = self.get_mut(id) {
                    t.state = TransferState::Failed { reason: reason.clone() };
                    t.finished_at = Some(now_ms);
                }
                self.trim();
            }
            _ => return false,
        }
        true
    }

    fn add(&mut self, t: Transfer) {
        // An id seen again (a resumed offer) replaces the old row rather than doubling it.
        self.list.retain(|old| old.id != t.id);
        self.list.push(t);
    }

    fn trim(&mut self) {
        let finished = self.list.iter().filter(|t| t.finished()).count();
        let mut drop = finished.saturating_sub(MAX_FINISHED);
        self.list.retain(|t| {
            if drop > 0 && t.finished() {
                drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// "1.5 MiB", "830 KiB", "12 B".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: &str, size: u64) -> ClientEvent {
        ClientEvent::FileOffer { id: id.into(), from: "bobfp".into(), name: "cat.png".into(), size }
    }

    #[test]
    fn incoming_offer_moves_to_done_with_its_path_and_rate() {
        let mut t = Transfers::default();
        assert!(t.apply(&offer("1", 4000), 0));
        assert_eq!(t.waiting_for_us(), 1);
        t.apply(&ClientEvent::FileProgress { id: "1".into(), bytes: 1000, total: 4000 }, 1_000);
        t.apply(&ClientEvent::FileProgress { id: "1".into(), bytes: 3000, total: 4000 }, 2_000);
        let row = t.get("1").unwrap();
        assert_eq!(row.state, TransferState::Moving);
        assert_eq!(row.fraction(), 0.75);
        assert_eq!(row.rate(2_000), Some(2000.0));
        t.apply(
            &ClientEvent::FileReceived {
                id: "1".into(),
                from: "bobfp".into(),
                path: "/d/cat.png".into(),
                size: 4000,
                sha256: "ab".into(),
            },
            3_000,
        );
        let row = t.get("1").unwrap();
        assert_eq!(row.state, TransferState::Done);
        assert_eq!(row.path.as_deref(), Some("/d/cat.png"));
        assert_eq!(t.waiting_for_us(), 0);
        // The rate stops at the finish, not at the time it is looked at.
        assert_eq!(row.rate(60_000), Some(1500.0));
    }

    #[test]
    fn outgoing_goes_preparing_offered_moving_sent() {
        let mut t = Transfers::default();
        let sending = ClientEvent::FileSending {
            id: "7".into(),
            to: "bobfp".into(),
            name: "a.bin".into(),
            size: 10,
            path: "/tmp/a.bin".into(),
        };
        t.apply(&sending, 0);
        assert_eq!(t.get("7").unwrap().state, TransferState::Preparing);
        t.apply(&ClientEvent::FileOffered { id: "7".into() }, 1);
        assert_eq!(t.get("7").unwrap().state, TransferState::Offered);
        t.apply(&ClientEvent::FileProgress { id: "7".into(), bytes: 5, total: 10 }, 2);
        t.apply(&ClientEvent::FileSent { id: "7".into(), to: "bobfp".into() }, 3);
        let row = t.get("7").unwrap();
        assert_eq!((row.state.clone(), row.bytes), (TransferState::Done, 10));
        // A late progress event does not reopen a finished transfer.
        t.apply(&ClientEvent::FileProgress { id: "7".into(), bytes: 6, total: 10 }, 4);
        assert_eq!(t.get("7").unwrap().state, TransferState::Done);
    }

    #[test]
    fn failures_are_kept_and_old_finished_rows_dropped() {
        let mut t = Transfers::default();
        for i in 0..(MAX_FINISHED + 5) {
            let id = i.to_string();
            t.apply(&offer(&id, 1), 0);
            t.apply(&ClientEvent::FileFailed { id, reason: "cancelled".into() }, 1);
        }
        t.apply(&offer("live", 1), 2);
        assert_eq!(t.list.len(), MAX_FINISHED + 1);
        assert_eq!(t.list[0].id, "5");
        assert!(
            matches!(&t.get("24").unwrap().state, TransferState::Failed { reason } if reason == "cancelled")
        );
        t.clear_finished();
        assert_eq!(t.list.len(), 1);
        assert!(!t.apply(&ClientEvent::Peers { peers: vec![] }, 3));
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(200 * 1024 * 1024), "200 MiB");
    }
}
