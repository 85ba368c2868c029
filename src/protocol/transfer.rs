//! File transfers as a sans-IO state machine: offers, accepts, flow control, resume and
//! completion. It touches no file: what must happen on disk comes out as a [`DiskRequest`],
//! and the net layer's disk worker answers each with a [`DiskDone`]. Bytes move on the direct
//! link's file channel (a [`FileChannel`]).
//!
//! The offer (name, size, SHA-256) travels in the Noise session, so the hash the receiver
//! checks against is authenticated. The sender reads ahead a few chunks and puts them on the
//! channel in order as its buffer drains. The receiver hands every chunk to the disk worker,
//! which writes it to a hidden part file and hashes it; only a file whose hash matches gets its
//! name. A receiver whose disk is slower than the network asks the sender to pause
//! ([`FileSignal::Pause`]) and to go on from where it is ([`FileSignal::Accept`]) once the
//! backlog has drained, so memory stays bounded and the network loop never waits for the disk.
//! When a link drops mid-transfer, the receiver asks again from what it has once a link is
//! back.

use super::names::is_invisible;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use super::events::ClientEvent;
use super::identity::IdentityKey;
use super::pace::{CALL_CHUNK, CALL_FILE_RATE, Pace};
use super::wire::{FileSignal, MAX_FILE_NAME};

/// Bytes of file per data-channel message (plus a 16-byte header).
pub const CHUNK: usize = 64 * 1024;
/// The sender keeps at most this much queued on the channel (in flight included): enough to
/// keep a 1 MiB window full between refills. Chat does not wait behind it: the channels'
/// queues take turns a message (one `CHUNK`) at a time.
pub const MAX_QUEUED: usize = 512 * 1024;
/// Bytes one disk read takes (sent as `CHUNK`s): a hand-over to the disk worker and back costs
/// about what sending a chunk does, so reads are larger than chunks.
const READ_SIZE: usize = 8 * CHUNK;
/// Reads the sender has made (or asked for) ahead of the channel, per transfer.
const READ_AHEAD: usize = 3;
/// Bytes a receiver holds for the disk before it asks the sender to pause, and below which
/// it asks it to go on. What arrives while the pause request travels is still taken, up to
/// `BACKLOG_MAX`; past that, chunks are dropped and sent again after the pause.
const BACKLOG_HIGH: u64 = 8 * 1024 * 1024;
const BACKLOG_LOW: u64 = 2 * 1024 * 1024;
const BACKLOG_MAX: u64 = 16 * 1024 * 1024;
/// Most bytes gathered into one write.
const WRITE_SIZE: usize = 8 * CHUNK;
/// A progress event per this many bytes, or per `PROGRESS_EVERY` if fewer moved (a transfer
/// paced for a call moves 8 MiB in 16 s), and at the end.
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether progress from `last` to `now_bytes` is worth an event.
fn progress_due(
    last: u64,
    now_bytes: u64,
    size: u64,
    last_at: Option<std::time::Instant>,
    now: std::time::Instant,
) -> bool {
    let moved = now_bytes.saturating_sub(last);
    moved >= PROGRESS_STEP
        || now_bytes == size
        || (moved > 0 && last_at.is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_EVERY))
}
/// Default largest file a receiver accepts.
pub const DEFAULT_MAX_SIZE: u64 = 16 * 1024 * 1024 * 1024;
/// Unfinished offers from one peer (waiting for an answer or arriving); more are declined.
pub const MAX_PENDING_OFFERS: usize = 16;
/// Unfinished incoming files from everyone together.
pub const MAX_INCOMING: usize = 64;

#[derive(Debug, Clone)]
pub struct TransferConfig {
    pub downloads: PathBuf,
    pub auto_accept: bool,
    pub max_size: u64,
}

/// What a transfer needs from the direct link's file channel.
pub trait FileChannel {
    /// Bytes queued on `peer`'s file channel and not yet acknowledged; `None` without one.
    fn file_buffered(&mut self, peer: &IdentityKey) -> Option<usize>;
    /// Writes one message on `peer`'s file channel.
    fn send_file_data(&mut self, now: std::time::Instant, peer: IdentityKey, data: &[u8]) -> FileWrite;
}

/// What became of a write on the file channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileWrite {
    Written,
    /// The buffer is full: wait for it to drain.
    Full,
    /// No open file channel (no link, or it just failed).
    NoChannel,
}

/// Work for the disk worker. Each request names its transfer; the answers come back as
/// [`DiskDone`] in the order the worker finishes them (reads may overtake each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRequest {
    /// Open a file to offer: its size at once ([`DiskDone::Sized`]), then its SHA-256.
    Open { id: u64, path: PathBuf },
    /// `len` bytes at `offset` of the file we offer as `id`; `generation` comes back with them.
    Read { id: u64, generation: u64, offset: u64, len: usize },
    /// A hidden part file for incoming `id` in `dir`.
    Create { id: u64, dir: PathBuf, part_name: String },
    /// Append `data` (which starts at `offset`) to `id`'s part file and to its running hash.
    Write { id: u64, offset: u64, data: Vec<u8> },
    /// Every byte is written: flush, fsync, compare the hash with `sha256`, and give the file
    /// `name` (or `name (1)` …, never overwriting) in `dir`. On a mismatch the part is deleted.
    Finish { id: u64, sha256: [u8; 32], dir: PathBuf, name: String },
    /// Done with incoming `id`: close its part file and delete it (unless it was finished).
    Close { id: u64 },
    /// Done with outgoing `id`: close the file. (Ids of the two directions are separate:
    /// a peer picks the ids of its offers, and may pick one of ours.)
    CloseRead { id: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskDone {
    Sized { id: u64, size: u64 },
    Opened { id: u64, size: u64, sha256: [u8; 32] },
    Read { id: u64, generation: u64, offset: u64, data: Vec<u8> },
    Created { id: u64 },
    Written { id: u64, upto: u64 },
    Finished { id: u64, path: PathBuf, sha256: [u8; 32] },
    Failed { id: u64, reason: String },
}

#[derive(Debug)]
pub enum TransferOutput {
    Signal { peer: IdentityKey, signal: FileSignal },
    Event(ClientEvent),
    Disk(DiskRequest),
}

/// A file we offer.
struct Outgoing {
    peer: IdentityKey,
    path: PathBuf,
    name: String,
    /// Known once the disk worker opened it.
    size: Option<u64>,
    offered: bool,
    sending: Option<Sending>,
    /// Of the latest (re)start; only ever goes up, so reads from before a pause or a
    /// dropped link are recognised when they come back.
    generation: u64,
    last_progress: u64,
    last_progress_at: Option<std::time::Instant>,
    /// The hash offered, to offer again if the offer may have been lost with a link.
    sha256: Option<[u8; 32]>,
    /// The receiver answered the offer (accepted it, or asked for a pause).
    answered: bool,
    /// When the receiver last asked for bytes or we last sent some: an accepted transfer
    /// idle for [`IDLE_LIMIT`] ends (a Complete lost with a link, a receiver gone quiet).
    moved_at: Option<std::time::Instant>,
}

/// An accepted outgoing transfer moving bytes.
struct Sending {
    /// Bumped on every (re)start, so reads issued before it are recognised and dropped.
    generation: u64,
    /// Next byte to ask the disk for, and next byte to put on the channel.
    next_read: u64,
    next_send: u64,
    reads_out: usize,
    /// Reads not yet all on the channel, by the offset they start at.
    ready: BTreeMap<u64, Vec<u8>>,
}

/// A file offered to us. It is known here by an id of ours (from the same counter as our
/// offers), and to the sender by the id it chose: a peer cannot pick an id that collides with
/// another peer's transfer or with one of ours (D23).
struct Incoming {
    peer: IdentityKey,
    /// The sender's id for it, used in every signal to the sender and in its chunks.
    remote_id: u64,
    name: String,
    size: u64,
    sha256: [u8; 32],
    receiving: Option<Receiving>,
}

/// An accepted incoming transfer.
#[derive(Default)]
struct Receiving {
    /// The part file exists (bytes may come once we said Accept).
    created: bool,
    /// Bytes taken from the channel, bytes handed to the disk, and bytes it wrote.
    queued: u64,
    submitted: u64,
    written: u64,
    /// Taken and not yet handed over: while a write is under way, chunks gather here and go
    /// as one write (a hand-over to the worker costs about what a chunk does).
    pending: Vec<u8>,
    /// We asked the sender to pause.
    paused: bool,
    /// When we last asked for bytes or got some; None until the first Accept. A receiver
    /// that hears nothing for `STALL_AFTER` asks again.
    quiet_since: Option<std::time::Instant>,
    /// When bytes last arrived (or the part file was made): a transfer with none for
    /// [`IDLE_LIMIT`] ends, whatever the reason (a sender gone quiet, a link that never
    /// comes back), instead of waiting forever.
    moved_at: Option<std::time::Instant>,
    finishing: bool,
    last_progress: u64,
    last_progress_at: Option<std::time::Instant>,
}

/// A receiver that asked for bytes and got none for this long asks again, from where it is.
/// Pause and Accept can take different paths (the link, the hub) and arrive swapped, and
/// either can be lost with a link: without this, a late Pause would stall a transfer for good.
/// Long enough that a slow relayed path (a 64 KiB chunk every few seconds) is not "nothing".
pub const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// An accepted transfer that receives nothing for this long ends with `file_failed` on both
/// sides. Our own pause for a slow disk does not count: the disk, not the sender, is late.
pub const IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// How long transfers with a peer the hub stopped listing wait for it to come back.
pub const OUT_OF_SIGHT_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// Since when an incoming transfer has waited for bytes it asked for (not while paused, nor
/// once every byte is here).
fn waiting_since(i: &Incoming) -> Option<std::time::Instant> {
    let r = i.receiving.as_ref().filter(|r| r.created && !r.paused && !r.finishing && r.queued < i.size)?;
    r.quiet_since
}

/// Since when an accepted transfer has received nothing, unless we paused it or it is
/// being finished.
fn idle_since(i: &Incoming) -> Option<std::time::Instant> {
    let r = i.receiving.as_ref().filter(|r| !r.paused && !r.finishing && r.queued < i.size)?;
    r.moved_at
}

pub struct Transfers {
    config: TransferConfig,
    /// Peers the hub lost sight of while transfers with them were under way, and when those
    /// end if they are not back (at most one entry per peer with a transfer).
    out_of_sight: HashMap<IdentityKey, std::time::Instant>,
    outgoing: HashMap<u64, Outgoing>,
    incoming: HashMap<u64, Incoming>,
    /// (sender, sender's id) → our id, for what the sender says about its offers.
    by_remote: HashMap<(IdentityKey, u64), u64>,
    next_id: u64,
    out: VecDeque<TransferOutput>,
    buf: Vec<u8>,
    /// While we are in a call, what we send is paced (`super::pace`).
    pace: Option<Pace>,
    /// A paced send waits for its tokens: the timer pumps again.
    pace_waiting: bool,
}

/// The name a file is offered under: its last path component, cut to what an offer carries.
pub fn offered_name(path: &std::path::Path) -> String {
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

/// The name to save an offered file under: its last path component, without characters
/// that mean something to file systems or draw nothing (a right-to-left override turns
/// `photo\u{202E}gpj.exe` into what a file manager shows as `photoexe.jpg`), never empty,
/// never hidden, never `..`, never a name Windows keeps for a device (`CON`, `nul.txt`,
/// `COM1.jpg`) or drops the end of (trailing dots and spaces).
pub fn safe_name(offered: &str) -> String {
    let base = offered.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim_end_matches(['.', ' ']).trim();
    let name = if trimmed.is_empty() { "file" } else { trimmed };
    if is_windows_device(name) { format!("_{name}") } else { name.to_string() }
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9` and `LPT1`–`LPT9` (also with ¹²³), in any case and
/// with any extension: Windows opens the device instead of a file of that name.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_uppercase();
    let mut chars = stem.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let rest: Vec<char> = chars.collect();
    match (prefix.as_str(), rest.as_slice()) {
        ("CON" | "PRN" | "AUX" | "NUL", []) => true,
        ("COM" | "LPT", [d]) => matches!(d, '1'..='9' | '¹' | '²' | '³'),
        _ => false,
    }
}

impl Transfers {
    pub fn new(config: TransferConfig, seed: u64) -> Self {
        Self {
            config,
            out_of_sight: HashMap::new(),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            by_remote: HashMap::new(),
            next_id: seed,
            out: VecDeque::new(),
            buf: Vec::with_capacity(16 + CHUNK),
            pace: None,
            pace_waiting: false,
        }
    }

    /// A call started (`true`) or ended: file data we send is paced while it is up.
    pub fn set_call_pace(&mut self, now: std::time::Instant, in_call: bool) {
        self.pace = in_call.then(|| Pace::new(now, CALL_FILE_RATE));
        // Unpaced, whatever waited may go now (the caller pumps).
        self.pace_waiting |= !in_call;
    }

    /// Sends what waited for the pace, once its time came.
    pub fn pump_paced(&mut self, now: std::time::Instant, links: &mut impl FileChannel) {
        if !self.pace_waiting || self.pace.as_ref().is_some_and(|p| p.ready_at(CALL_CHUNK + 16) > now) {
            return;
        }
        self.pace_waiting = false;
        let mut peers: Vec<IdentityKey> =
            self.outgoing.values().filter(|o| o.sending.is_some()).map(|o| o.peer).collect();
        peers.sort();
        peers.dedup();
        for peer in peers {
            self.pump(now, peer, links);
        }
    }

    pub fn poll_output(&mut self) -> Option<TransferOutput> {
        self.out.pop_front()
    }

    fn event(&mut self, e: ClientEvent) {
        self.out.push_back(TransferOutput::Event(e));
    }

    fn signal(&mut self, peer: IdentityKey, signal: FileSignal) {
        self.out.push_back(TransferOutput::Signal { peer, signal });
    }

    fn disk(&mut self, request: DiskRequest) {
        self.out.push_back(TransferOutput::Disk(request));
    }

    fn failed(&mut self, id: u64, reason: impl Into<String>) {
        self.event(ClientEvent::FileFailed { id: id_text(id), reason: reason.into() });
    }

    /// The next id of ours, for a file we offer or one offered to us.
    fn new_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Starts sending the file at `path` to `peer`: it is opened and hashed, then offered.
    /// Returns the transfer's id.
    pub fn send_file(&mut self, peer: IdentityKey, path: PathBuf) -> u64 {
        let id = self.new_id();
        let name = offered_name(&path);
        let o = Outgoing {
            peer,
            path: path.clone(),
            name,
            size: None,
            offered: false,
            sending: None,
            last_progress: 0,
            last_progress_at: None,
            generation: 0,
            sha256: None,
            answered: false,
            moved_at: None,
        };
        self.outgoing.insert(id, o);
        self.disk(DiskRequest::Open { id, path });
        id
    }

    pub fn accept(&mut self, id_str: &str) {
        let Some(id) = parse_id(id_str).filter(|id| self.incoming.contains_key(id)) else {
            return self.event(ClientEvent::error("unknown_file", format!("no file offer {id_str}")));
        };
        self.start_receiving(id);
    }

    pub fn decline(&mut self, id_str: &str) {
        let Some(id) = parse_id(id_str) else { return };
        if let Some(inc) = self.remove_incoming(id) {
            self.forget_incoming(id, &inc);
            self.signal(inc.peer, FileSignal::Decline { id: inc.remote_id, reason: "declined".into() });
        }
    }

    pub fn cancel(&mut self, id_str: &str) {
        let Some(id) = parse_id(id_str) else { return };
        let to = if let Some(o) = self.outgoing.remove(&id) {
            self.disk(DiskRequest::CloseRead { id });
            Some((o.peer, id))
        } else if let Some(inc) = self.remove_incoming(id) {
            self.forget_incoming(id, &inc);
            Some((inc.peer, inc.remote_id))
        } else {
            None
        };
        match to {
            Some((peer, wire_id)) => {
                self.signal(peer, FileSignal::Cancel { id: wire_id });
                self.failed(id, "cancelled");
            }
            None => self.event(ClientEvent::error("unknown_file", format!("no transfer {id_str}"))),
        }
    }

    fn remove_incoming(&mut self, id: u64) -> Option<Incoming> {
        let inc = self.incoming.remove(&id)?;
        self.by_remote.remove(&(inc.peer, inc.remote_id));
        Some(inc)
    }

    /// Signals `make(sender's id)` to the sender of incoming `id`.
    fn tell_sender(&mut self, id: u64, make: impl FnOnce(u64) -> FileSignal) {
        if let Some(inc) = self.incoming.get(&id) {
            let (peer, signal) = (inc.peer, make(inc.remote_id));
            self.signal(peer, signal);
        }
    }

    /// Asks the disk worker to drop an incoming transfer's part file, if it made one.
    fn forget_incoming(&mut self, id: u64, inc: &Incoming) {
        if inc.receiving.is_some() {
            self.disk(DiskRequest::Close { id });
        }
    }

    fn start_receiving(&mut self, id: u64) {
        let Some(inc) = self.incoming.get_mut(&id) else { return };
        if inc.receiving.is_some() {
            return;
        }
        inc.receiving = Some(Receiving::default());
        // Short enough for any file system's 255-byte names, whatever the offered name.
        let mut base = safe_name(&inc.name);
        while base.len() > MAX_FILE_NAME - 32 {
            base.pop();
        }
        let part_name = format!(".{base}.kith-part-{}", id_text(id));
        let dir = self.config.downloads.clone();
        self.disk(DiskRequest::Create { id, dir, part_name });
    }

    /// Signalling from `peer`'s session.
    pub fn handle_signal(
        &mut self,
        now: std::time::Instant,
        peer: IdentityKey,
        signal: FileSignal,
        links: &mut impl FileChannel,
    ) {
        match signal {
            FileSignal::Offer { id, name, size, sha256 } => {
                if self.by_remote.contains_key(&(peer, id)) || name.len() > MAX_FILE_NAME {
                    return;
                }
                // Accepted or not, every unfinished offer holds something of ours (a row, a part
                // file and its descriptor once accepted): bounded per peer and in total.
                let from_peer = self.incoming.values().filter(|i| i.peer == peer).count();
                if from_peer >= MAX_PENDING_OFFERS {
                    let reason = format!("the receiver has {MAX_PENDING_OFFERS} files from you unfinished");
                    return self.signal(peer, FileSignal::Decline { id, reason });
                }
                if self.incoming.len() >= MAX_INCOMING {
                    let reason =
                        "the receiver has too many files coming in; offer it again later".to_string();
                    return self.signal(peer, FileSignal::Decline { id, reason });
                }
                if size > self.config.max_size {
                    let reason = format!("the receiver takes files up to {} bytes", self.config.max_size);
                    return self.signal(peer, FileSignal::Decline { id, reason });
                }
                let fingerprint = peer.fingerprint().to_string();
                let (remote_id, id) = (id, self.new_id());
                self.by_remote.insert((peer, remote_id), id);
                let incoming =
                    Incoming { peer, remote_id, name: name.clone(), size, sha256, receiving: None };
                self.incoming.insert(id, incoming);
                self.event(ClientEvent::FileOffer { id: id_text(id), from: fingerprint, name, size });
                if self.config.auto_accept {
                    self.start_receiving(id);
                }
            }
            FileSignal::Accept { id, offset } => {
                // An accept for nothing we send (we restarted, or cancelled and the Cancel was
                // lost) is answered, so the receiver does not wait for bytes forever.
                let Some(o) = self.outgoing.get_mut(&id).filter(|o| o.peer == peer) else {
                    return self.signal(peer, FileSignal::Cancel { id });
                };
                let Some(size) = o.size.filter(|s| offset <= *s) else {
                    self.outgoing.remove(&id);
                    self.disk(DiskRequest::CloseRead { id });
                    return self.failed(id, "the peer asked for bytes past the end");
                };
                o.generation += 1;
                o.answered = true;
                o.moved_at = Some(now);
                let generation = o.generation;
                // Progress is counted again from where the receiver is.
                o.last_progress = offset;
                o.sending = Some(Sending {
                    generation,
                    next_read: offset,
                    next_send: offset,
                    reads_out: 0,
                    ready: BTreeMap::new(),
                });
                if offset == size {
                    // Nothing to send (an empty file, or all of it arrived before a resume).
                    return;
                }
                self.pump(now, peer, links);
            }
            FileSignal::Pause { id } => {
                if let Some(o) = self.outgoing.get_mut(&id).filter(|o| o.peer == peer) {
                    o.sending = None;
                    o.answered = true;
                    o.moved_at = Some(now);
                }
            }
            FileSignal::Decline { id, reason } => {
                if self.outgoing.get(&id).is_some_and(|o| o.peer == peer) {
                    self.outgoing.remove(&id);
                    self.disk(DiskRequest::CloseRead { id });
                    self.failed(id, format!("the peer declined: {reason}"));
                }
            }
            FileSignal::Cancel { id } => {
                if self.outgoing.get(&id).is_some_and(|o| o.peer == peer) {
                    self.outgoing.remove(&id);
                    self.disk(DiskRequest::CloseRead { id });
                    self.failed(id, "cancelled by the peer");
                } else if let Some(local) = self.by_remote.get(&(peer, id)).copied()
                    && let Some(inc) = self.remove_incoming(local)
                {
                    self.forget_incoming(local, &inc);
                    self.failed(local, "cancelled by the peer");
                }
            }
            FileSignal::Complete { id } => {
                if self.outgoing.get(&id).is_some_and(|o| o.peer == peer) {
                    self.outgoing.remove(&id);
                    self.disk(DiskRequest::CloseRead { id });
                    self.event(ClientEvent::FileSent { id: id_text(id), to: peer.fingerprint().to_string() });
                }
            }
        }
    }

    /// What the disk worker finished.
    pub fn handle_disk(&mut self, now: std::time::Instant, done: DiskDone, links: &mut impl FileChannel) {
        match done {
            DiskDone::Sized { id, size } => {
                let Some(o) = self.outgoing.get(&id) else { return };
                // Said before hashing, which takes a while for a large file, so a front-end
                // shows the transfer at once.
                let event = ClientEvent::FileSending {
                    id: id_text(id),
                    to: o.peer.fingerprint().to_string(),
                    name: o.name.clone(),
                    size,
                    path: o.path.display().to_string(),
                };
                self.event(event);
            }
            DiskDone::Opened { id, size, sha256 } => {
                // Cancelled while it was being hashed: the worker may let the file go.
                let Some(o) = self.outgoing.get_mut(&id) else {
                    return self.disk(DiskRequest::CloseRead { id });
                };
                o.size = Some(size);
                o.offered = true;
                o.sha256 = Some(sha256);
                let (peer, name) = (o.peer, o.name.clone());
                self.event(ClientEvent::FileOffered { id: id_text(id) });
                self.signal(peer, FileSignal::Offer { id, name, size, sha256 });
            }
            DiskDone::Read { id, generation, offset, data } => {
                let Some(o) = self.outgoing.get_mut(&id) else { return };
                let Some(s) = o.sending.as_mut().filter(|s| s.generation == generation) else { return };
                s.reads_out = s.reads_out.saturating_sub(1);
                s.ready.insert(offset, data);
                let peer = o.peer;
                self.pump(now, peer, links);
            }
            DiskDone::Created { id } => {
                let Some(inc) = self.incoming.get_mut(&id) else { return };
                let Some(r) = inc.receiving.as_mut() else { return };
                r.created = true;
                r.quiet_since = Some(now);
                r.moved_at = Some(now);
                let size = inc.size;
                self.tell_sender(id, |id| FileSignal::Accept { id, offset: 0 });
                if size == 0 {
                    self.finish(id);
                }
            }
            DiskDone::Written { id, upto } => self.on_written(now, id, upto),
            DiskDone::Finished { id, path, sha256 } => {
                let Some(inc) = self.remove_incoming(id) else { return };
                self.signal(inc.peer, FileSignal::Complete { id: inc.remote_id });
                self.event(ClientEvent::FileReceived {
                    id: id_text(id),
                    from: inc.peer.fingerprint().to_string(),
                    path: path.display().to_string(),
                    size: inc.size,
                    sha256: hex::encode(sha256),
                });
            }
            DiskDone::Failed { id, reason } => {
                if let Some(o) = self.outgoing.remove(&id) {
                    if o.offered {
                        self.signal(o.peer, FileSignal::Cancel { id });
                    }
                    self.disk(DiskRequest::CloseRead { id });
                    self.failed(id, reason);
                } else if let Some(inc) = self.remove_incoming(id) {
                    self.forget_incoming(id, &inc);
                    let remote = inc.remote_id;
                    let signal = match inc.receiving.as_ref().is_some_and(|r| r.created) {
                        true => FileSignal::Cancel { id: remote },
                        // It never started: the sender hears why rather than wait.
                        false => {
                            FileSignal::Decline { id: remote, reason: "the receiver cannot save it".into() }
                        }
                    };
                    self.signal(inc.peer, signal);
                    self.failed(id, reason);
                }
            }
        }
    }

    fn on_written(&mut self, now: std::time::Instant, id: u64, upto: u64) {
        let Some(inc) = self.incoming.get_mut(&id) else { return };
        let Some(r) = inc.receiving.as_mut() else { return };
        r.written = r.written.max(upto);
        let more = r.written == r.submitted && !r.pending.is_empty();
        let size = inc.size;
        let mut resume = None;
        if r.paused && r.queued - r.written <= BACKLOG_LOW {
            r.paused = false;
            r.quiet_since = Some(now);
            resume = Some(r.queued);
        }
        let progress = progress_due(r.last_progress, r.written, size, r.last_progress_at, now).then(|| {
            r.last_progress = r.written;
            r.last_progress_at = Some(now);
            r.written
        });
        let done = r.written == size && !r.finishing;
        if more {
            self.submit_pending(id);
        }
        if let Some(offset) = resume {
            self.tell_sender(id, |id| FileSignal::Accept { id, offset });
        }
        if let Some(bytes) = progress {
            self.event(ClientEvent::FileProgress { id: id_text(id), bytes, total: size });
        }
        if done {
            self.finish(id);
        }
    }

    /// Every byte is on disk: the worker checks the hash and gives the file its name.
    fn finish(&mut self, id: u64) {
        let Some(inc) = self.incoming.get_mut(&id) else { return };
        let Some(r) = inc.receiving.as_mut() else { return };
        r.finishing = true;
        let request = DiskRequest::Finish {
            id,
            sha256: inc.sha256,
            dir: self.config.downloads.clone(),
            name: safe_name(&inc.name),
        };
        self.disk(request);
    }

    /// Puts file bytes for `peer` on its file channel, in order, until the channel's buffer is
    /// full, and asks the disk for more ahead of it.
    pub fn pump(&mut self, now: std::time::Instant, peer: IdentityKey, links: &mut impl FileChannel) {
        let ids: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.peer == peer && o.sending.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send_ready(now, id, links);
            self.read_ahead(id);
        }
    }

    fn send_ready(&mut self, now: std::time::Instant, id: u64, links: &mut impl FileChannel) {
        loop {
            let Some(o) = self.outgoing.get_mut(&id) else { return };
            let (peer, size) = (o.peer, o.size.unwrap_or(0));
            let Some(s) = o.sending.as_mut() else { return };
            if links.file_buffered(&peer).is_none_or(|q| q >= MAX_QUEUED) {
                return;
            }
            // The read that holds the next byte to send, and the chunk of it that starts there.
            // (Reads wholly before it are stale leftovers: dropped.)
            s.ready.retain(|start, data| start + data.len() as u64 > s.next_send);
            let Some((&start, data)) = s.ready.range(..=s.next_send).next_back() else { return };
            let from = (s.next_send - start) as usize;
            let chunk_size = if self.pace.is_some() { CALL_CHUNK } else { CHUNK };
            let Some(chunk) = data.get(from..(from + chunk_size).min(data.len())).filter(|c| !c.is_empty())
            else {
                return;
            };
            if let Some(p) = self.pace.as_mut()
                && !p.take(now, 16 + chunk.len())
            {
                self.pace_waiting = true;
                return;
            }
            let (len, read_done) = (chunk.len(), from + chunk.len() == data.len());
            self.buf.clear();
            self.buf.extend_from_slice(&id.to_be_bytes());
            self.buf.extend_from_slice(&s.next_send.to_be_bytes());
            self.buf.extend_from_slice(chunk);
            match links.send_file_data(now, peer, &self.buf) {
                FileWrite::Written => {}
                // Full after all (or gone): the chunk stays for the next try.
                FileWrite::Full | FileWrite::NoChannel => return,
            }
            if read_done {
                s.ready.remove(&start);
            }
            s.next_send += len as u64;
            o.moved_at = Some(now);
            let sent = s.next_send;
            if progress_due(o.last_progress, sent, size, o.last_progress_at, now) {
                o.last_progress = sent;
                o.last_progress_at = Some(now);
                self.event(ClientEvent::FileProgress { id: id_text(id), bytes: sent, total: size });
            }
        }
    }

    fn read_ahead(&mut self, id: u64) {
        let Some(o) = self.outgoing.get_mut(&id) else { return };
        let size = o.size.unwrap_or(0);
        let Some(s) = o.sending.as_mut() else { return };
        let mut reads = Vec::new();
        while s.reads_out + s.ready.len() < READ_AHEAD && s.next_read < size {
            // Compared as u64 first: on a 32-bit target a remainder that is a multiple of 2^32
            // would truncate to 0 and the loop would never advance (D24).
            let len = (size - s.next_read).min(READ_SIZE as u64) as usize;
            reads.push(DiskRequest::Read { id, generation: s.generation, offset: s.next_read, len });
            s.next_read += len as u64;
            s.reads_out += 1;
        }
        for r in reads {
            self.disk(r);
        }
    }

    /// A message from `peer`'s file channel: `id`, `offset`, bytes.
    pub fn handle_data(&mut self, now: std::time::Instant, peer: IdentityKey, data: &[u8]) {
        let (Some(remote_id), Some(offset)) = (
            data.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
            data.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
        ) else {
            return;
        };
        let bytes = &data[16..];
        let Some(&id) = self.by_remote.get(&(peer, remote_id)) else { return };
        let Some(inc) = self.incoming.get_mut(&id) else { return };
        let size = inc.size;
        let Some(r) = inc.receiving.as_mut().filter(|r| r.created) else { return };
        if offset != r.queued || offset + bytes.len() as u64 > size {
            // A chunk from before a resume, or one the sender should not have sent.
            tracing::debug!(id, offset, queued = r.queued, "file chunk out of place, ignored");
            return;
        }
        let backlog = r.queued - r.written;
        if backlog + bytes.len() as u64 > BACKLOG_MAX {
            // The disk is far behind and the sender did not pause yet: it will send this
            // again when asked to go on from `queued`.
            return;
        }
        r.queued += bytes.len() as u64;
        r.quiet_since = Some(now);
        r.moved_at = Some(now);
        r.pending.extend_from_slice(bytes);
        let pause = !r.paused && r.queued - r.written > BACKLOG_HIGH && r.queued < size;
        if pause {
            r.paused = true;
        }
        let writing = r.submitted > r.written;
        if !writing || r.pending.len() >= WRITE_SIZE || r.queued == size || pause {
            self.submit_pending(id);
        }
        if pause {
            tracing::debug!(id, "the disk is behind: asking the sender to pause");
            self.signal(peer, FileSignal::Pause { id: remote_id });
        }
    }

    /// Hands what gathered for `id` to the disk.
    fn submit_pending(&mut self, id: u64) {
        let Some(r) = self.incoming.get_mut(&id).and_then(|i| i.receiving.as_mut()) else { return };
        if r.pending.is_empty() {
            return;
        }
        let data = std::mem::take(&mut r.pending);
        let offset = r.submitted;
        r.submitted += data.len() as u64;
        self.disk(DiskRequest::Write { id, offset, data });
    }

    /// A (new) file channel to `peer` is open: ask again for whatever is half-received, and
    /// send whatever waits.
    pub fn link_ready(&mut self, now: std::time::Instant, peer: IdentityKey, links: &mut impl FileChannel) {
        let resume: Vec<(u64, u64)> = self
            .incoming
            .iter()
            .filter(|(_, i)| i.peer == peer)
            .filter_map(|(id, i)| {
                let r = i.receiving.as_ref().filter(|r| r.created && !r.finishing)?;
                Some((*id, r.queued))
            })
            .collect();
        for (id, offset) in resume {
            if let Some(r) = self.incoming.get_mut(&id).and_then(|i| i.receiving.as_mut()) {
                r.paused = false;
                r.quiet_since = Some(now);
            }
            self.tell_sender(id, |id| FileSignal::Accept { id, offset });
        }
        // An offer not answered yet may have gone down with the old link: offered again (the
        // receiver knows it by our id and does not show it twice).
        let unanswered: Vec<FileSignal> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.peer == peer && o.offered && !o.answered)
            .filter_map(|(id, o)| {
                Some(FileSignal::Offer { id: *id, name: o.name.clone(), size: o.size?, sha256: o.sha256? })
            })
            .collect();
        for offer in unanswered {
            self.signal(peer, offer);
        }
        self.pump(now, peer, links);
    }

    /// Every transfer with `peer` ends, with `why`, and its files are closed (a half-received
    /// part file is deleted). An incoming file whose every byte arrived still finishes: its
    /// hash decides, not the sender.
    pub fn end_with(&mut self, peer: IdentityKey, why: &str) {
        self.out_of_sight.remove(&peer);
        let mut outgoing: Vec<u64> =
            self.outgoing.iter().filter(|(_, o)| o.peer == peer).map(|(id, _)| *id).collect();
        outgoing.sort_unstable();
        for id in outgoing {
            self.outgoing.remove(&id);
            self.disk(DiskRequest::CloseRead { id });
            self.failed(id, why);
        }
        let all_here = |i: &Incoming| i.receiving.as_ref().is_some_and(|r| r.queued >= i.size);
        let mut incoming: Vec<u64> =
            self.incoming.iter().filter(|(_, i)| i.peer == peer && !all_here(i)).map(|(id, _)| *id).collect();
        incoming.sort_unstable();
        for id in incoming {
            if let Some(inc) = self.remove_incoming(id) {
                self.forget_incoming(id, &inc);
                self.failed(id, why);
            }
        }
    }

    /// The hub lost sight of `peer`. Its transfers wait (it may be back in a moment, and
    /// they resume); if it is not back within `OUT_OF_SIGHT_GRACE`, they end.
    pub fn out_of_sight(&mut self, now: std::time::Instant, peer: IdentityKey) {
        let busy =
            self.outgoing.values().any(|o| o.peer == peer) || self.incoming.values().any(|i| i.peer == peer);
        if busy {
            self.out_of_sight.entry(peer).or_insert(now + OUT_OF_SIGHT_GRACE);
        }
    }

    /// `peer`'s same process is back: its transfers resume once a link is open.
    pub fn back_in_sight(&mut self, peer: IdentityKey) {
        self.out_of_sight.remove(&peer);
    }

    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        let stalls = self.incoming.values().filter_map(|i| Some(waiting_since(i)? + STALL_AFTER));
        let idle = self.incoming.values().filter_map(|i| Some(idle_since(i)? + IDLE_LIMIT));
        let idle_out = self.outgoing.values().filter_map(|o| Some(o.moved_at? + IDLE_LIMIT));
        let paced = self.pace.as_ref().filter(|_| self.pace_waiting).map(|p| p.ready_at(CALL_CHUNK + 16));
        self.out_of_sight.values().copied().chain(stalls).chain(idle).chain(idle_out).chain(paced).min()
    }

    pub fn handle_timeout(&mut self, now: std::time::Instant) {
        let idle: Vec<u64> = self
            .incoming
            .iter()
            .filter(|(_, i)| idle_since(i).is_some_and(|t| t + IDLE_LIMIT <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(inc) = self.remove_incoming(id) {
                self.forget_incoming(id, &inc);
                self.signal(inc.peer, FileSignal::Cancel { id: inc.remote_id });
                self.failed(id, "nothing arrived for ten minutes");
            }
        }
        let idle_out: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.moved_at.is_some_and(|t| t + IDLE_LIMIT <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in idle_out {
            if let Some(o) = self.outgoing.remove(&id) {
                self.disk(DiskRequest::CloseRead { id });
                self.signal(o.peer, FileSignal::Cancel { id });
                self.failed(id, "nothing moved for ten minutes");
            }
        }
        let stalled: Vec<u64> = self
            .incoming
            .iter()
            .filter(|(_, i)| waiting_since(i).is_some_and(|t| t + STALL_AFTER <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            let Some(r) = self.incoming.get_mut(&id).and_then(|i| i.receiving.as_mut()) else { continue };
            r.quiet_since = Some(now);
            let offset = r.queued;
            tracing::debug!(id, offset, "no file data for a while: asking again");
            self.tell_sender(id, |id| FileSignal::Accept { id, offset });
        }
        let due: Vec<IdentityKey> =
            self.out_of_sight.iter().filter(|(_, at)| **at <= now).map(|(peer, _)| *peer).collect();
        for peer in due {
            self.end_with(peer, "the other side has been gone for two minutes");
        }
    }

    /// The link to `peer` went down: stop sending until the receiver asks again, and write
    /// what arrived from it.
    pub fn link_down(&mut self, peer: IdentityKey) {
        for o in self.outgoing.values_mut().filter(|o| o.peer == peer) {
            o.sending = None;
        }
        let from_peer: Vec<u64> =
            self.incoming.iter().filter(|(_, i)| i.peer == peer).map(|(id, _)| *id).collect();
        for id in from_peer {
            // Nothing can come without a link: the next one asks again (`link_ready`).
            if let Some(r) = self.incoming.get_mut(&id).and_then(|i| i.receiving.as_mut()) {
                r.quiet_since = None;
            }
            self.submit_pending(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoLinks;
    impl FileChannel for NoLinks {
        fn file_buffered(&mut self, _: &IdentityKey) -> Option<usize> {
            None
        }
        fn send_file_data(&mut self, _: std::time::Instant, _: IdentityKey, _: &[u8]) -> FileWrite {
            FileWrite::NoChannel
        }
    }

    #[test]
    fn offers_get_ids_of_ours_whatever_id_their_sender_picked() {
        let config =
            TransferConfig { downloads: PathBuf::from("/d"), auto_accept: false, max_size: u64::MAX };
        let mut t = Transfers::new(config, 100);
        let (bob, eve) = (IdentityKey([2; 32]), IdentityKey([3; 32]));
        let mine = t.send_file(bob, PathBuf::from("/home/a/x"));
        let now = std::time::Instant::now();
        // Eve picks the id of our own offer, and bob happens to as well.
        for peer in [eve, bob] {
            let offer = FileSignal::Offer { id: mine, name: "f".into(), size: 1, sha256: [0; 32] };
            t.handle_signal(now, peer, offer, &mut NoLinks);
        }
        let ids: Vec<String> = std::iter::from_fn(|| t.poll_output())
            .filter_map(|o| match o {
                TransferOutput::Event(ClientEvent::FileOffer { id, .. }) => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] != ids[1] && ids.iter().all(|id| *id != id_text(mine)), "{ids:?}");
        // Declining eve's offer tells eve, by eve's id, and leaves bob's alone.
        t.decline(&ids[0]);
        let out: Vec<TransferOutput> = std::iter::from_fn(|| t.poll_output()).collect();
        assert!(
            matches!(&out[..], [TransferOutput::Signal { peer, signal: FileSignal::Decline { id, .. } }] if *peer == eve && *id == mine),
            "{out:?}"
        );
        assert!(t.incoming.values().any(|i| i.peer == bob));
        assert!(t.outgoing.contains_key(&mine));
    }

    #[test]
    fn a_flood_of_offers_is_bounded_per_peer_and_in_total_even_when_accepting_everything() {
        let config = TransferConfig { downloads: PathBuf::from("/d"), auto_accept: true, max_size: u64::MAX };
        let mut t = Transfers::new(config, 100);
        let now = std::time::Instant::now();
        let mut declined = 0;
        for p in 0..10u8 {
            let peer = IdentityKey([p + 1; 32]);
            for id in 0..10_000u64 {
                let offer = FileSignal::Offer { id, name: "f".into(), size: 1, sha256: [0; 32] };
                t.handle_signal(now, peer, offer, &mut NoLinks);
                while let Some(o) = t.poll_output() {
                    declined += usize::from(matches!(
                        o,
                        TransferOutput::Signal { signal: FileSignal::Decline { .. }, .. }
                    ));
                }
            }
            assert!(t.incoming.values().filter(|i| i.peer == peer).count() <= MAX_PENDING_OFFERS);
        }
        assert_eq!(t.incoming.len(), MAX_INCOMING);
        assert_eq!(declined, 100_000 - MAX_INCOMING, "every offer not taken is declined, with a reason");
    }

    #[test]
    fn offered_names_cannot_escape_the_downloads_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Windows\\evil.exe"), "evil.exe");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("a\u{0}b|c.txt"), "a_b_c.txt");
        assert_eq!(safe_name(""), "file");
        // Invisible and reordering characters go; what is left is what a file manager shows.
        assert_eq!(safe_name("photo\u{202E}gpj.exe"), "photogpj.exe");
        assert_eq!(safe_name("a\u{200B}b\u{FEFF}.txt"), "ab.txt");
        // Windows: device names keep their place but lose their meaning; trailing dots go.
        for device in ["CON", "nul.txt", "Com1.jpg", "LPT9", "aux .tar.gz", "COM\u{00B9}"] {
            assert!(safe_name(device).starts_with('_'), "{device}");
        }
        for ordinary in ["CONSOLE.txt", "COM10", "com.txt", "nullify"] {
            assert!(!safe_name(ordinary).starts_with('_'), "{ordinary}");
        }
        assert_eq!(safe_name("report.pdf. . "), "report.pdf");
        assert_eq!(safe_name("..."), "file");
    }

    /// A file channel that acknowledges everything at once: only the sender's pace limits it.
    #[derive(Default)]
    struct Wire {
        writes: Vec<(std::time::Instant, usize)>,
    }
    impl FileChannel for Wire {
        fn file_buffered(&mut self, _: &IdentityKey) -> Option<usize> {
            Some(0)
        }
        fn send_file_data(&mut self, now: std::time::Instant, _: IdentityKey, data: &[u8]) -> FileWrite {
            self.writes.push((now, data.len()));
            FileWrite::Written
        }
    }

    /// Serves the disk reads a transfer asks for (from a file of `size` zero bytes).
    fn serve_reads(t: &mut Transfers, now: std::time::Instant, wire: &mut Wire) {
        let reads: Vec<DiskRequest> = std::iter::from_fn(|| t.poll_output())
            .filter_map(|o| match o {
                TransferOutput::Disk(r @ DiskRequest::Read { .. }) => Some(r),
                _ => None,
            })
            .collect();
        for r in reads {
            if let DiskRequest::Read { id, generation, offset, len } = r {
                t.handle_disk(now, DiskDone::Read { id, generation, offset, data: vec![0; len] }, wire);
            }
        }
    }

    /// While we are in a call, file data goes in small messages at the call's rate (on a
    /// channel that would take any amount); when the call ends the rest goes at once.
    #[test]
    fn in_a_call_file_data_is_paced_in_small_messages_and_the_pace_lifts_after() {
        let config =
            TransferConfig { downloads: PathBuf::from("/d"), auto_accept: false, max_size: u64::MAX };
        let mut t = Transfers::new(config, 100);
        let bob = IdentityKey([2; 32]);
        let t0 = std::time::Instant::now();
        let mut wire = Wire::default();
        let size = 64 * 1024 * 1024;
        let id = t.send_file(bob, PathBuf::from("/home/a/big"));
        t.handle_disk(t0, DiskDone::Opened { id, size, sha256: [0; 32] }, &mut wire);
        t.set_call_pace(t0, true);
        t.handle_signal(t0, bob, FileSignal::Accept { id, offset: 0 }, &mut wire);
        // Ten seconds of the simulated clock, run by the transfers' own timer.
        let mut now = t0;
        let end = t0 + std::time::Duration::from_secs(10);
        while now < end {
            serve_reads(&mut t, now, &mut wire);
            t.pump_paced(now, &mut wire);
            let next = t.poll_timeout().expect("a paced transfer waits for its timer");
            assert!(next > now || t.poll_timeout() > Some(now), "the timer moves on");
            now = next.max(now + std::time::Duration::from_micros(100));
        }
        let paced: usize = wire.writes.iter().map(|(_, n)| n).sum();
        let want = 10 * CALL_FILE_RATE as usize;
        assert!(paced.abs_diff(want) <= 2 * (CALL_CHUNK + 16), "{paced} bytes in 10 s, want about {want}");
        assert!(wire.writes.iter().all(|(_, n)| *n <= CALL_CHUNK + 16), "small messages in a call");
        // Never two messages closer than one message's time at the rate (no bursts).
        let gap = std::time::Duration::from_secs_f64(CALL_CHUNK as f64 / CALL_FILE_RATE as f64);
        assert!(wire.writes.windows(2).skip(1).all(|w| w[1].0 - w[0].0 >= gap.mul_f64(0.99)));

        // The call ends: full-size messages, as fast as the channel takes them.
        wire.writes.clear();
        t.set_call_pace(now, false);
        t.pump_paced(now, &mut wire);
        for _ in 0..200 {
            serve_reads(&mut t, now, &mut wire);
        }
        let sent: usize = wire.writes.iter().map(|(_, n)| n).sum();
        assert!(sent >= 8 * CHUNK, "{sent} bytes at once after the call");
        assert!(wire.writes.iter().any(|(_, n)| *n == CHUNK + 16));
    }
}
