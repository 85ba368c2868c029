//! The disk side of file transfers, off the network loop: the loop hands over
//! [`DiskRequest`]s without waiting and gets [`DiskDone`]s back on a channel.
//!
//! Writes of received files run in order on one thread of their own ("kith-disk"), which
//! keeps each part file and its running SHA-256. Opening (and hashing) files to offer, and
//! reading their chunks, run on Tokio's blocking pool with positional reads, so hashing a
//! large file never holds up a transfer that is writing, and reads never wait behind writes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::queue::Overflow;
use crate::protocol::transfer::{DiskDone, DiskRequest};

/// Requests queued for the writer thread before they wait in the loop's backlog instead.
const WRITE_QUEUE: usize = 1024;
/// Answers queued for the loop.
pub const DONE_QUEUE: usize = 1024;

pub struct Disk {
    /// Requests for the writer thread; what its queue has no room for yet waits, in order.
    writes: Overflow<DiskRequest>,
    /// Files we offer, open for reading, shared with the blocking tasks that read them.
    reading: Arc<Mutex<HashMap<u64, Arc<File>>>>,
    done: mpsc::Sender<DiskDone>,
}

impl Disk {
    /// Starts the writer thread; answers arrive on `done`.
    pub fn spawn(done: mpsc::Sender<DiskDone>) -> std::io::Result<Self> {
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let answers = done.clone();
        std::thread::Builder::new().name("kith-disk".into()).spawn(move || write_loop(queue, answers))?;
        Ok(Self { writes: Overflow::new(writes), reading: Default::default(), done })
    }

    /// Hands a request over without waiting.
    pub fn submit(&mut self, request: DiskRequest) {
        match request {
            DiskRequest::Open { id, path } => {
                let (reading, done) = (self.reading.clone(), self.done.clone());
                tokio::task::spawn_blocking(move || open(id, &path, &reading, &done));
            }
            DiskRequest::Read { id, generation, offset, len } => {
                let file = self.reading.lock().ok().and_then(|r| r.get(&id).cloned());
                let done = self.done.clone();
                tokio::task::spawn_blocking(move || {
                    let answer = match file {
                        Some(f) => match read_at(&f, offset, len) {
                            Ok(data) => DiskDone::Read { id, generation, offset, data },
                            Err(e) => {
                                DiskDone::Failed { id, reason: format!("reading the file failed: {e}") }
                            }
                        },
                        // Closed meanwhile (a cancel): said, so the transfer does not wait for it.
                        None => DiskDone::Failed { id, reason: "the file is no longer open".into() },
                    };
                    let _ = done.blocking_send(answer);
                });
            }
            DiskRequest::CloseRead { id } => {
                if let Ok(mut r) = self.reading.lock() {
                    r.remove(&id);
                }
            }
            other => {
                if let Err(request) = self.writes.try_pass(other) {
                    self.writes.hold(request);
                }
            }
        }
    }

    pub fn has_backlog(&self) -> bool {
        self.writes.has_backlog()
    }

    /// Resolves when the writer thread can take more (for the loop's `select!`).
    pub async fn room(&self) {
        self.writes.room().await
    }

    /// Moves waiting writes to the writer thread as far as its queue takes them.
    pub fn send_backlog(&mut self) {
        self.writes.send_backlog();
    }
}

/// Opens a file to offer: says its size, hashes it, keeps it open for the reads.
fn open(id: u64, path: &Path, reading: &Mutex<HashMap<u64, Arc<File>>>, done: &mpsc::Sender<DiskDone>) {
    let opened = File::open(path).and_then(|f| Ok((f.metadata()?.len(), f)));
    let (size, file) = match opened {
        Ok(x) => x,
        Err(e) => {
            let reason = format!("cannot read {}: {e}", path.display());
            let _ = done.blocking_send(DiskDone::Failed { id, reason });
            return;
        }
    };
    let _ = done.blocking_send(DiskDone::Sized { id, size });
    let answer = match hash(&file) {
        // The size the offer promises is what was hashed.
        Ok((size, sha256)) => {
            if let Ok(mut r) = reading.lock() {
                r.insert(id, Arc::new(file));
            }
            DiskDone::Opened { id, size, sha256 }
        }
        Err(e) => DiskDone::Failed { id, reason: format!("cannot read {}: {e}", path.display()) },
    };
    let _ = done.blocking_send(answer);
}

/// Size and SHA-256 of what `file` holds.
fn hash(mut file: &File) -> std::io::Result<(u64, [u8; 32])> {
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

/// Reads exactly `len` bytes at `offset`, without moving a shared file position.
fn read_at(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[filled..], offset + filled as u64)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(file, &mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(buf)
}

/// A part file being written.
struct Part {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    hasher: Sha256,
}

fn write_loop(mut queue: mpsc::Receiver<DiskRequest>, done: mpsc::Sender<DiskDone>) {
    let mut parts: HashMap<u64, Part> = HashMap::new();
    while let Some(request) = queue.blocking_recv() {
        let answer = match request {
            DiskRequest::Create { id, dir, part_name } => {
                let path = dir.join(part_name);
                match std::fs::create_dir_all(&dir).and_then(|()| File::create(&path)) {
                    Ok(f) => {
                        let out = BufWriter::with_capacity(1 << 20, f);
                        parts.insert(id, Part { path, out, written: 0, hasher: Sha256::new() });
                        DiskDone::Created { id }
                    }
                    Err(e) => {
                        DiskDone::Failed { id, reason: format!("cannot write in {}: {e}", dir.display()) }
                    }
                }
            }
            DiskRequest::Write { id, offset, data } => {
                let Some(part) = parts.get_mut(&id) else { continue };
                if offset != part.written {
                    continue;
                }
                match part.out.write_all(&data) {
                    Ok(()) => {
                        part.hasher.update(&data);
                        part.written += data.len() as u64;
                        DiskDone::Written { id, upto: part.written }
                    }
                    Err(e) => {
                        let reason = format!("writing {} failed: {e}", part.path.display());
                        if let Some(part) = parts.remove(&id) {
                            discard(part);
                        }
                        DiskDone::Failed { id, reason }
                    }
                }
            }
            DiskRequest::Finish { id, sha256, dir, name } => {
                let Some(part) = parts.remove(&id) else { continue };
                finish(id, part, sha256, &dir, &name)
            }
            DiskRequest::Close { id } => {
                if let Some(part) = parts.remove(&id) {
                    discard(part);
                }
                continue;
            }
            DiskRequest::Open { .. } | DiskRequest::Read { .. } | DiskRequest::CloseRead { .. } => continue,
        };
        if done.blocking_send(answer).is_err() {
            break;
        }
    }
    // The loop is gone: what was half-received stays as a part file (resumable later by
    // name is not offered, so remove it rather than leave litter).
    for (_, part) in parts.drain() {
        discard(part);
    }
}

fn discard(part: Part) {
    drop(part.out);
    let _ = std::fs::remove_file(&part.path);
}

/// Flush, fsync, check the hash, and only then give the file its name.
fn finish(id: u64, part: Part, sha256: [u8; 32], dir: &Path, name: &str) -> DiskDone {
    let digest: [u8; 32] = part.hasher.finalize().into();
    let tmp = part.path;
    let placed = part
        .out
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("saving the file failed: {e}"))
        .and_then(|()| {
            if digest == sha256 {
                Ok(())
            } else {
                Err("the file arrived damaged (SHA-256 mismatch) and was deleted".to_string())
            }
        })
        .and_then(|()| {
            let target = claim_unused_path(dir, name)
                .map_err(|e| format!("cannot create the file in {}: {e}", dir.display()))?;
            std::fs::rename(&tmp, &target).map(|()| target.clone()).map_err(|e| {
                let _ = std::fs::remove_file(&target);
                format!("cannot move the file to {}: {e}", target.display())
            })
        });
    match placed {
        Ok(path) => DiskDone::Finished { id, path, sha256: digest },
        Err(reason) => {
            let _ = std::fs::remove_file(&tmp);
            DiskDone::Failed { id, reason }
        }
    }
}

/// Candidates for a received file's name: `dir/name`, then `dir/stem (n).ext`.
fn candidate_paths(dir: &Path, name: &str) -> impl Iterator<Item = PathBuf> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    let first = dir.join(name);
    let dir = dir.to_path_buf();
    std::iter::once(first).chain((1..10_000).map(move |n| dir.join(format!("{stem} ({n}){ext}"))))
}

/// The first candidate name nobody has, claimed by creating it empty (`create_new` fails
/// if anything, even a file made a moment ago by another program, holds the name), so the
/// rename that follows replaces only our own placeholder and never someone's file.
fn claim_unused_path(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    for path in candidate_paths(dir, name) {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("every name like {name} is taken")))
}

/// How long a part file must have been left alone before a start-up sweep removes it. Part
/// files of another running Kith (another profile sharing the downloads folder) are written
/// to or re-asked for long before this.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Removes part files (`.NAME.kith-part-ID`) that a crash or a kill left in `dir`: transfers
/// do not resume across restarts, so nothing will ever finish them. Returns how many went.
pub fn sweep_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_part = name.starts_with('.')
            && name
                .rsplit_once(".kith-part-")
                .is_some_and(|(_, id)| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= LEFTOVER_AGE);
        if is_part && stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("photo (1).jpg"), b"x").unwrap();
        assert_eq!(claim_unused_path(dir.path(), "photo.jpg").unwrap(), dir.path().join("photo (2).jpg"));
        // The name is held from then on: a second claim moves on rather than share it.
        assert_eq!(claim_unused_path(dir.path(), "photo.jpg").unwrap(), dir.path().join("photo (3).jpg"));
        assert_eq!(claim_unused_path(dir.path(), "notes").unwrap(), dir.path().join("notes"));
        assert_eq!(std::fs::read(dir.path().join("photo.jpg")).unwrap(), b"x");
    }

    #[test]
    fn only_stale_part_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - LEFTOVER_AGE - std::time::Duration::from_secs(60);
        let write = |name: &str, stale: bool| {
            let f = File::create(dir.path().join(name)).unwrap();
            if stale {
                f.set_modified(old).unwrap();
            }
        };
        write(".photo.jpg.kith-part-00000000000000aa", true);
        write(".kith-part-00000000000000bb", true);
        write(".video.mp4.kith-part-00000000000000cc", false);
        write("notes.kith-part-00000000000000dd", true);
        write(".config.kith-part-backup", true);
        assert_eq!(sweep_leftovers(dir.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".config.kith-part-backup",
                ".video.mp4.kith-part-00000000000000cc",
                "notes.kith-part-00000000000000dd"
            ]
        );
    }

    #[tokio::test]
    async fn a_file_is_written_hashed_and_named_only_when_its_hash_matches() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let mut disk = Disk::spawn(tx).unwrap();
        let data = b"hello, disk".to_vec();
        let good: [u8; 32] = Sha256::digest(&data).into();
        for (id, sha256) in [(1, good), (2, [0; 32])] {
            let d = dir.path().to_path_buf();
            disk.submit(DiskRequest::Create { id, dir: d.clone(), part_name: format!(".part{id}") });
            disk.submit(DiskRequest::Write { id, offset: 0, data: data.clone() });
            disk.submit(DiskRequest::Finish { id, sha256, dir: d, name: "greeting.txt".into() });
        }
        let mut answers = Vec::new();
        while answers.len() < 6 {
            answers.push(rx.recv().await.unwrap());
        }
        let path = dir.path().join("greeting.txt");
        assert_eq!(answers[0], DiskDone::Created { id: 1 });
        assert_eq!(answers[1], DiskDone::Written { id: 1, upto: data.len() as u64 });
        assert_eq!(answers[2], DiskDone::Finished { id: 1, path: path.clone(), sha256: good });
        assert!(matches!(&answers[5], DiskDone::Failed { id: 2, reason } if reason.contains("SHA-256")));
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // Only the good file is left: no part files, no second copy.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
