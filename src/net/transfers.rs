//! File transfers over the direct links' file channel.
//!
//! The offer (name, size, SHA-256) travels in the Noise session; the bytes go in chunks on
//! the link's own data channel, as fast as its buffer drains (backpressure from str0m's
//! buffered amount). The receiver writes to a hidden temporary file next to the downloads,
//! hashes as it goes, and only a file whose hash matches is renamed to its final name. When a
//! link drops mid-transfer, the receiver asks again from what it has once a link is back.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::links::{FileWrite, Links};
use crate::protocol::events::ClientEvent;
use crate::protocol::identity::IdentityKey;
use crate::protocol::wire::{FileSignal, MAX_FILE_NAME};

/// Bytes of file per data-channel message (plus a 16-byte header).
pub const CHUNK: usize = 64 * 1024;
/// The sender keeps at most this much queued on the channel (in flight included): enough to
/// keep a 1 MiB window full between refills. Chat does not wait behind it: the channels'
/// queues take turns a message (one `CHUNK`) at a time.
pub const MAX_QUEUED: usize = 512 * 1024;
/// A progress event per this many bytes (and at the end).
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;
/// Default largest file a receiver accepts.
pub const DEFAULT_MAX_SIZE: u64 = 16 * 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TransferConfig {
    pub downloads: PathBuf,
    pub auto_accept: bool,
    pub max_size: u64,
}

#[derive(Debug)]
pub enum TransferOutput {
    Signal { peer: IdentityKey, signal: FileSignal },
    Event(ClientEvent),
}

/// A file we offered.
struct Outgoing {
    peer: IdentityKey,
    file: File,
    size: u64,
    /// Next byte to put on the channel; `None` until the peer accepts.
    next: Option<u64>,
    last_progress: u64,
}

/// A file offered to us.
struct Incoming {
    peer: IdentityKey,
    name: String,
    size: u64,
    sha256: [u8; 32],
    /// Set once accepted: the temporary file, the bytes in it, and their running hash.
    writing: Option<Writing>,
}

struct Writing {
    path: PathBuf,
    out: BufWriter<File>,
    received: u64,
    hasher: Sha256,
    last_progress: u64,
}

pub struct Transfers {
    config: TransferConfig,
    outgoing: HashMap<u64, Outgoing>,
    incoming: HashMap<u64, Incoming>,
    next_id: u64,
    out: VecDeque<TransferOutput>,
    buf: Vec<u8>,
}

/// The name a file is offered under: its last path component, cut to what an offer carries.
pub fn offered_name(path: &Path) -> String {
    let mut name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    while name.len() > MAX_FILE_NAME {
        name.pop();
    }
    name
}

/// How a transfer id is written in events and commands.
pub fn id_text(id: u64) -> String {
    format!("{id:016x}")
}

fn parse_id(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 16).ok()
}

/// Hashes a file for an offer: (size, SHA-256). Blocking; run it off the network loop.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

/// The name to save an offered file under: its last path component, without characters
/// that mean something to file systems, never empty, never hidden, never `..`.
fn safe_name(offered: &str) -> String {
    let base = offered.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() { "file".to_string() } else { trimmed.to_string() }
}

/// `dir/name`, or `dir/stem (n).ext` if that exists.
fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (1..).map(|n| dir.join(format!("{stem} ({n}){ext}"))).find(|p| !p.exists()).unwrap_or(first)
}

impl Transfers {
    pub fn new(config: TransferConfig, seed: u64) -> Self {
        Self {
            config,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            next_id: seed,
            out: VecDeque::new(),
            buf: vec![0; 16 + CHUNK],
        }
    }

    pub fn poll_output(&mut self) -> Option<TransferOutput> {
        self.out.pop_front()
    }

    fn event(&mut self, e: ClientEvent) {
        self.out.push_back(TransferOutput::Event(e));
    }

    fn failed(&mut self, id: u64, reason: impl Into<String>) {
        self.event(ClientEvent::FileFailed { id: id_text(id), reason: reason.into() });
    }

    /// A new transfer id (shown to the user before the offer is ready).
    pub fn new_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Hashing a file to offer failed (it could not be read).
    pub fn hash_failed(&mut self, id: u64, path: &Path, e: std::io::Error) {
        self.failed(id, format!("cannot read {}: {e}", path.display()));
    }

    /// Offers a hashed file to `peer`.
    pub fn offer(&mut self, id: u64, peer: IdentityKey, path: &Path, size: u64, sha256: [u8; 32]) {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.failed(id, format!("cannot open {}: {e}", path.display())),
        };
        let name = offered_name(path);
        self.outgoing.insert(id, Outgoing { peer, file, size, next: None, last_progress: 0 });
        self.event(ClientEvent::FileOffered { id: id_text(id) });
        self.out
            .push_back(TransferOutput::Signal { peer, signal: FileSignal::Offer { id, name, size, sha256 } });
    }

    pub fn accept(&mut self, id_str: &str) {
        let Some(id) = parse_id(id_str).filter(|id| self.incoming.contains_key(id)) else {
            return self.event(ClientEvent::error("unknown_file", format!("no file offer {id_str}")));
        };
        self.start_receiving(id);
    }

    pub fn decline(&mut self, id_str: &str) {
        let Some(id) = parse_id(id_str) else { return };
        if let Some(inc) = self.incoming.remove(&id) {
            self.discard(&inc);
            let signal = FileSignal::Decline { id, reason: "declined".into() };
            self.out.push_back(TransferOutput::Signal { peer: inc.peer, signal });
        }
    }

    pub fn cancel(&mut self, id_str: &str) {
        let Some(id) = parse_id(id_str) else { return };
        let peer = if let Some(o) = self.outgoing.remove(&id) {
            Some(o.peer)
        } else if let Some(inc) = self.incoming.remove(&id) {
            self.discard(&inc);
            Some(inc.peer)
        } else {
            None
        };
        match peer {
            Some(peer) => {
                self.out.push_back(TransferOutput::Signal { peer, signal: FileSignal::Cancel { id } });
                self.failed(id, "cancelled");
            }
            None => self.event(ClientEvent::error("unknown_file", format!("no transfer {id_str}"))),
        }
    }

    fn discard(&self, inc: &Incoming) {
        if let Some(w) = &inc.writing {
            let _ = std::fs::remove_file(&w.path);
        }
    }

    fn start_receiving(&mut self, id: u64) {
        let Some(inc) = self.incoming.get_mut(&id) else { return };
        if inc.writing.is_some() {
            return;
        }
        let dir = &self.config.downloads;
        let path = dir.join(format!(".{}.kith-part-{}", safe_name(&inc.name), id_text(id)));
        let opened = std::fs::create_dir_all(dir).and_then(|_| File::create(&path));
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                let peer = inc.peer;
                self.incoming.remove(&id);
                let reason = format!("cannot write in {}: {e}", dir.display());
                self.out.push_back(TransferOutput::Signal {
                    peer,
                    signal: FileSignal::Decline { id, reason: "the receiver cannot save it".into() },
                });
                return self.failed(id, reason);
            }
        };
        inc.writing = Some(Writing {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            received: 0,
            hasher: Sha256::new(),
            last_progress: 0,
        });
        let peer = inc.peer;
        self.out.push_back(TransferOutput::Signal { peer, signal: FileSignal::Accept { id, offset: 0 } });
    }

    /// Signalling from `peer`'s session.
    pub fn handle_signal(&mut self, now: Instant, peer: IdentityKey, signal: FileSignal, links: &mut Links) {
        match signal {
            FileSignal::Offer { id, name, size, sha256 } => {
                if self.incoming.contains_key(&id) || name.len() > MAX_FILE_NAME {
                    return;
                }
                if size > self.config.max_size {
                    let reason = format!("the receiver takes files up to {} bytes", self.config.max_size);
                    self.out.push_back(TransferOutput::Signal {
                        peer,
                        signal: FileSignal::Decline { id, reason },
                    });
                    return;
                }
                let fingerprint = peer.fingerprint().to_string();
                self.incoming.insert(id, Incoming { peer, name: name.clone(), size, sha256, writing: None });
                self.event(ClientEvent::FileOffer { id: id_text(id), from: fingerprint, name, size });
                if self.config.auto_accept {
                    self.start_receiving(id);
                }
            }
            FileSignal::Accept { id, offset } => {
                let Some(o) = self.outgoing.get_mut(&id).filter(|o| o.peer == peer) else { return };
                if offset > o.size || o.file.seek(SeekFrom::Start(offset)).is_err() {
                    self.outgoing.remove(&id);
                    return self.failed(id, "the peer asked for bytes past the end");
                }
                o.next = Some(offset);
                self.pump(now, peer, links);
            }
            FileSignal::Decline { id, reason } => {
                if self.outgoing.get(&id).is_some_and(|o| o.peer == peer) {
                    self.outgoing.remove(&id);
                    self.failed(id, format!("the peer declined: {reason}"));
                }
            }
            FileSignal::Cancel { id } => {
                if self.outgoing.get(&id).is_some_and(|o| o.peer == peer) {
                    self.outgoing.remove(&id);
                    self.failed(id, "cancelled by the peer");
                } else if self.incoming.get(&id).is_some_and(|i| i.peer == peer) {
                    if let Some(inc) = self.incoming.remove(&id) {
                        self.discard(&inc);
                    }
                    self.failed(id, "cancelled by the peer");
                }
            }
            FileSignal::Complete { id } => {
                if self.outgoing.get(&id).is_some_and(|o| o.peer == peer) {
                    self.outgoing.remove(&id);
                    self.event(ClientEvent::FileSent { id: id_text(id), to: peer.fingerprint().to_string() });
                }
            }
        }
    }

    /// Puts file bytes for `peer` on its file channel until the channel's buffer is full.
    pub fn pump(&mut self, now: Instant, peer: IdentityKey, links: &mut Links) {
        let ids: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.peer == peer && o.next.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            loop {
                match links.file_buffered(&peer) {
                    Some(queued) if queued < MAX_QUEUED => {}
                    _ => return,
                }
                let Some(o) = self.outgoing.get_mut(&id) else { break };
                let Some(next) = o.next else { break };
                if next >= o.size {
                    break;
                }
                let want = CHUNK.min((o.size - next) as usize);
                self.buf.clear();
                self.buf.extend_from_slice(&id.to_be_bytes());
                self.buf.extend_from_slice(&next.to_be_bytes());
                self.buf.resize(16 + want, 0);
                if let Err(e) = o.file.read_exact(&mut self.buf[16..]) {
                    self.outgoing.remove(&id);
                    self.failed(id, format!("reading the file failed: {e}"));
                    break;
                }
                match links.send_file_data(now, peer, &self.buf) {
                    FileWrite::Written => {}
                    // Full after all (or gone): rewind and wait for the channel.
                    FileWrite::Full | FileWrite::NoChannel => {
                        let _ = o.file.seek(SeekFrom::Start(next));
                        return;
                    }
                }
                let sent = next + want as u64;
                o.next = Some(sent);
                if sent - o.last_progress >= PROGRESS_STEP || sent == o.size {
                    o.last_progress = sent;
                    let total = o.size;
                    self.event(ClientEvent::FileProgress { id: id_text(id), bytes: sent, total });
                }
            }
        }
    }

    /// A message from `peer`'s file channel: `id`, `offset`, bytes.
    pub fn handle_data(&mut self, peer: IdentityKey, data: &[u8]) {
        let (Some(id), Some(offset)) = (
            data.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
            data.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
        ) else {
            return;
        };
        let bytes = &data[16..];
        let Some(inc) = self.incoming.get_mut(&id).filter(|i| i.peer == peer) else { return };
        let size = inc.size;
        let Some(w) = inc.writing.as_mut() else { return };
        if offset != w.received || offset + bytes.len() as u64 > size {
            // A chunk from before a resume, or one the sender should not have sent.
            tracing::debug!(id, offset, received = w.received, "file chunk out of place, ignored");
            return;
        }
        if let Err(e) = w.out.write_all(bytes) {
            let reason = format!("writing {} failed: {e}", w.path.display());
            return self.abort_incoming(id, reason);
        }
        w.hasher.update(bytes);
        w.received += bytes.len() as u64;
        let received = w.received;
        if received - w.last_progress >= PROGRESS_STEP || received == size {
            w.last_progress = received;
            self.event(ClientEvent::FileProgress { id: id_text(id), bytes: received, total: size });
        }
        if received == size {
            self.finish(id);
        }
    }

    fn abort_incoming(&mut self, id: u64, reason: String) {
        if let Some(inc) = self.incoming.remove(&id) {
            self.discard(&inc);
            self.give_up(inc.peer, id, reason);
        }
    }

    /// Tells the sender the transfer is over, and the user why.
    fn give_up(&mut self, peer: IdentityKey, id: u64, reason: String) {
        self.out.push_back(TransferOutput::Signal { peer, signal: FileSignal::Cancel { id } });
        self.failed(id, reason);
    }

    /// Every byte is in: check the hash, then give the file its name. On any failure the
    /// temporary file is deleted.
    fn finish(&mut self, id: u64) {
        let Some(inc) = self.incoming.remove(&id) else { return };
        let Some(w) = inc.writing else { return };
        let digest: [u8; 32] = w.hasher.finalize().into();
        let Writing { path: tmp, out, .. } = w;
        let placed = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("saving the file failed: {e}"))
            .and_then(|()| {
                if digest == inc.sha256 {
                    Ok(())
                } else {
                    Err("the file arrived damaged (SHA-256 mismatch) and was deleted".to_string())
                }
            })
            .and_then(|()| {
                let target = unused_path(&self.config.downloads, &safe_name(&inc.name));
                std::fs::rename(&tmp, &target)
                    .map(|()| target.clone())
                    .map_err(|e| format!("cannot move the file to {}: {e}", target.display()))
            });
        let target = match placed {
            Ok(t) => t,
            Err(reason) => {
                let _ = std::fs::remove_file(&tmp);
                return self.give_up(inc.peer, id, reason);
            }
        };
        self.out.push_back(TransferOutput::Signal { peer: inc.peer, signal: FileSignal::Complete { id } });
        self.event(ClientEvent::FileReceived {
            id: id_text(id),
            from: inc.peer.fingerprint().to_string(),
            path: target.display().to_string(),
            size: inc.size,
            sha256: hex::encode(digest),
        });
    }

    /// A (new) file channel to `peer` is open: ask again for whatever is half-received, and
    /// send whatever waits.
    pub fn link_ready(&mut self, now: Instant, peer: IdentityKey, links: &mut Links) {
        let resume: Vec<(u64, u64)> = self
            .incoming
            .iter()
            .filter(|(_, i)| i.peer == peer)
            .filter_map(|(id, i)| i.writing.as_ref().map(|w| (*id, w.received)))
            .collect();
        for (id, offset) in resume {
            self.out.push_back(TransferOutput::Signal { peer, signal: FileSignal::Accept { id, offset } });
        }
        self.pump(now, peer, links);
    }

    /// The link to `peer` went down: stop sending until the receiver asks again.
    pub fn link_down(&mut self, peer: IdentityKey) {
        for o in self.outgoing.values_mut().filter(|o| o.peer == peer) {
            o.next = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_names_cannot_escape_the_downloads_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Windows\\evil.exe"), "evil.exe");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("a\u{0}b|c.txt"), "a_b_c.txt");
        assert_eq!(safe_name(""), "file");
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("photo (1).jpg"), b"x").unwrap();
        assert_eq!(unused_path(dir.path(), "photo.jpg"), dir.path().join("photo (2).jpg"));
        assert_eq!(unused_path(dir.path(), "notes"), dir.path().join("notes"));
    }
}
