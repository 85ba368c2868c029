//! A disk in memory for the simulated tests of transfers: it carries out the transfer
//! machine's `DiskRequest`s, with writes that can be made slow.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kith::protocol::transfer::{DiskDone, DiskRequest};
use sha2::{Digest, Sha256};

/// A disk in memory: files to offer by path, part files being written, saved files. Each
/// write takes `write_delay` per 64 KiB it carries, one write at a time (a slow disk).
#[derive(Default)]
pub struct SimDisk {
    pub files: HashMap<PathBuf, Vec<u8>>,
    pub reading: HashMap<u64, Vec<u8>>,
    pub parts: HashMap<u64, Vec<u8>>,
    pub saved: HashMap<PathBuf, Vec<u8>>,
    pub write_delay: Duration,
    /// Writes waiting for the disk, and when the one at the front completes.
    pub writes: VecDeque<(u64, u64, Vec<u8>)>,
    pub busy_until: Option<Instant>,
    pub done: VecDeque<DiskDone>,
    /// Most bytes that were waiting for the disk at once.
    pub max_waiting: usize,
}

impl SimDisk {
    pub fn submit(&mut self, now: Instant, request: DiskRequest) {
        match request {
            DiskRequest::Open { id, path } => match self.files.get(&path) {
                Some(data) => {
                    let sha256 = Sha256::digest(data).into();
                    let size = data.len() as u64;
                    self.done.push_back(DiskDone::Sized { id, size });
                    self.done.push_back(DiskDone::Opened { id, size, sha256 });
                    self.reading.insert(id, data.clone());
                }
                None => self.done.push_back(DiskDone::Failed { id, reason: "no such file".into() }),
            },
            DiskRequest::Read { id, generation, offset, len } => {
                let data = self.reading[&id][offset as usize..offset as usize + len].to_vec();
                self.done.push_back(DiskDone::Read { id, generation, offset, data });
            }
            DiskRequest::Create { id, .. } => {
                self.parts.insert(id, Vec::new());
                self.done.push_back(DiskDone::Created { id });
            }
            DiskRequest::Write { id, offset, data } => {
                if self.writes.is_empty() {
                    self.busy_until = Some(now + self.time_for(data.len()));
                }
                self.writes.push_back((id, offset, data));
                let waiting = self.writes.iter().map(|w| w.2.len()).sum();
                self.max_waiting = self.max_waiting.max(waiting);
            }
            DiskRequest::Finish { id, sha256, dir, name } => {
                let part = self.parts.remove(&id).unwrap();
                let digest: [u8; 32] = Sha256::digest(&part).into();
                if digest == sha256 {
                    let path = dir.join(name);
                    self.saved.insert(path.clone(), part);
                    self.done.push_back(DiskDone::Finished { id, path, sha256 });
                } else {
                    self.done.push_back(DiskDone::Failed { id, reason: "hash mismatch".into() });
                }
            }
            DiskRequest::Close { id } => {
                self.parts.remove(&id);
            }
            DiskRequest::CloseRead { id } => {
                self.reading.remove(&id);
            }
        }
    }

    /// How long the disk takes for a write of `len` bytes.
    fn time_for(&self, len: usize) -> Duration {
        self.write_delay.mul_f64(len as f64 / 65_536.0)
    }

    /// Completes the writes that are due.
    pub fn tick(&mut self, now: Instant) {
        while let Some(at) = self.busy_until.filter(|t| *t <= now) {
            let Some((id, offset, data)) = self.writes.pop_front() else { break };
            // A write queued before a Close: the real worker writes it, then deletes the part.
            let Some(part) = self.parts.get_mut(&id) else {
                self.busy_until = self.writes.front().map(|w| at + self.time_for(w.2.len()));
                continue;
            };
            assert_eq!(part.len() as u64, offset, "writes arrive in order");
            part.extend_from_slice(&data);
            self.done.push_back(DiskDone::Written { id, upto: part.len() as u64 });
            self.busy_until = self.writes.front().map(|w| at + self.time_for(w.2.len()));
        }
    }
}
