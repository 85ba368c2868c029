//! The media thread: one per call. When a frame is due (or every 5 ms with a sound card,
//! whose rings it polls) it looks whether the microphone has a frame (encoded **once**, and
//! the one packet goes to the net thread for every peer) and whether the speaker wants one
//! (each peer's jitter buffer gives 20 ms, the mixer sums them). Once a second it reports
//! each peer's stats.
//!
//! It talks to the net thread through two bounded queues: packets in (`MediaIn`, sent with
//! `try_send`, so a slow media thread costs packets, never the net thread's time) and a
//! callback out (`MediaOut`), which the net side makes non-blocking too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use crate::protocol::identity::IdentityKey;

use super::apm::{Apm, ApmSettings};
use super::codec::{Decoder, Encoder};
use super::devices::{self, MicChoice, SpeakerChoice};
use super::jitter::{JitterBuffer, JitterStats};
use super::meter::MicMeter;
use super::signal::{db_of_mean_square, dominant_frequency, level_db};
use super::sources::{FRAME_TIME, Microphone, NullSpeaker, Speaker};
use super::trace::Trace;
use super::{FRAME, MAX_PEERS, SAMPLE_RATE, mixer};

/// How often the thread looks at a sound card's rings (a synthetic source or the null
/// speaker says when its next frame is due, and the thread sleeps until then).
const TICK: Duration = Duration::from_millis(5);
/// How often it reports.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Packets waiting for the media thread, in all (50 a second per peer: a second of a full call).
pub const INBOX: usize = 512;
/// The recent audio kept per peer to measure its pitch (60 ms: a 40 ms window over lags up to 20 ms).
const ANALYSIS: usize = FRAME * 3;

/// From the net thread.
pub enum MediaIn {
    /// An Opus packet from `peer`, with its RTP timestamp (48 kHz, extended to 64 bits).
    Audio {
        peer: IdentityKey,
        ts: u64,
        data: Vec<u8>,
        arrived: Instant,
    },
    /// `peer` is no longer in the call.
    PeerLeft {
        peer: IdentityKey,
    },
    Mute(bool),
    Deafen(bool),
    /// Echo cancellation, noise suppression, gain control: which are on.
    Processing(ApmSettings),
    /// `peer`'s volume, 0.0–2.0 (1.0 as sent).
    Volume {
        peer: IdentityKey,
        gain: f32,
    },
}

/// To the net thread.
#[derive(Debug)]
pub enum MediaOut {
    /// One encoded frame, for every peer in the call (the same bytes to each).
    Audio {
        ts: u64,
        data: Arc<[u8]>,
    },
    Stats(Vec<PeerAudioStats>),
    /// One encoded video picture (H.264, Annex B), for every peer in the call; `ts` at 90 kHz.
    Video {
        ts: u64,
        data: Arc<[u8]>,
        keyframe: bool,
    },
    /// `peer`'s decoder lost its place and asks the peer for a keyframe.
    WantKeyframe {
        peer: IdentityKey,
    },
    VideoStats(super::video::engine::PeerVideoStats),
    /// Something the user should know (a device went away, the codec failed).
    Problem(String),
}

/// One peer's audio over the last second, and since the call began.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerAudioStats {
    pub peer: IdentityKey,
    pub jitter: JitterStats,
    pub buffer_ms: u32,
    pub target_ms: u32,
    pub level_db: f32,
    pub freq_hz: Option<f32>,
}

impl PeerAudioStats {
    /// For a peer we have heard nothing from.
    pub fn silent(peer: IdentityKey) -> Self {
        Self {
            peer,
            jitter: JitterStats::default(),
            buffer_ms: 0,
            target_ms: 0,
            level_db: -100.0,
            freq_hz: None,
        }
    }
}

/// The thread's end of the call.
pub struct MediaEngine {
    inbox: Option<SyncSender<MediaIn>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Packets dropped because the media thread was behind.
    pub overflowed: u64,
}

impl MediaEngine {
    /// Starts the media thread, which opens the chosen devices (a sound card's stream lives
    /// on the thread that uses it); `out` is called from that thread. Muted and deafened
    /// from its first frame if `muted` and `deafened` say so (told later, a frame could slip out).
    pub fn start(
        mic: MicChoice,
        speaker: SpeakerChoice,
        processing: ApmSettings,
        (muted, deafened): (bool, bool),
        meter: Arc<MicMeter>,
        mut out: Box<dyn FnMut(MediaOut) + Send>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(INBOX);
        let thread = std::thread::Builder::new().name("kith-media".into()).spawn(move || {
            let opened = devices::open(&mic, &speaker);
            for problem in opened.problems {
                out(MediaOut::Problem(problem));
            }
            // A real microphone hears the room; the synthetic ones need no cleaning.
            let apm = opened.mic_is_device.then(|| Apm::new(processing));
            match Pipeline::new(opened.mic, opened.speaker, out) {
                Ok(mut p) => {
                    p.apm = apm;
                    p.meter = Some(meter.clone());
                    (p.muted, p.deafened) = (muted, deafened);
                    p.run(rx)
                }
                Err((mut out, e)) => out(MediaOut::Problem(format!("the audio codec could not start: {e}"))),
            }
            meter.clear();
        })?;
        Ok(Self { inbox: Some(tx), thread: Some(thread), overflowed: 0 })
    }

    /// Hands `input` to the media thread without waiting. False if it was dropped.
    pub fn send(&mut self, input: MediaIn) -> bool {
        let Some(tx) = &self.inbox else { return false };
        match tx.try_send(input) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.overflowed += 1;
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Drop for MediaEngine {
    /// Ends the thread (closing its inbox) and waits for it: it lets go of the devices first.
    fn drop(&mut self) {
        self.inbox.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Peer {
    jitter: JitterBuffer,
    gain: f32,
    recent: Vec<f32>,
    sum_squares: f64,
    samples: u64,
}

struct Pipeline {
    mic: Option<Box<dyn Microphone>>,
    /// Without a speaker, a null one: the buffers are drained at the same pace, so the stats
    /// stay true and a speaker plugged in later starts from the present.
    speaker: Box<dyn Speaker>,
    out: Box<dyn FnMut(MediaOut) + Send>,
    encoder: Encoder,
    ts: u64,
    peers: HashMap<IdentityKey, Peer>,
    gains: HashMap<IdentityKey, f32>,
    muted: bool,
    deafened: bool,
    next_stats: Instant,
    apm: Option<Apm>,
    meter: Option<Arc<MicMeter>>,
    trace: Option<Trace>,
}

type StartError = (Box<dyn FnMut(MediaOut) + Send>, super::codec::CodecError);

impl Pipeline {
    fn new(
        mic: Option<Box<dyn Microphone>>,
        speaker: Option<Box<dyn Speaker>>,
        out: Box<dyn FnMut(MediaOut) + Send>,
    ) -> Result<Self, StartError> {
        let encoder = match Encoder::new() {
            Ok(e) => e,
            Err(e) => return Err((out, e)),
        };
        Ok(Self {
            mic,
            speaker: speaker.unwrap_or_else(|| Box::new(NullSpeaker::default())),
            out,
            encoder,
            // A random start, as RFC 3550 asks, so timestamps say nothing about the call's age.
            ts: u64::from(
                rand_core::TryRngCore::try_next_u32(&mut rand_core::OsRng).unwrap_or(0) & 0x00ff_ffff,
            ),
            peers: HashMap::new(),
            gains: HashMap::new(),
            muted: false,
            deafened: false,
            next_stats: Instant::now() + STATS_EVERY,
            apm: None,
            meter: None,
            trace: Trace::from_env(),
        })
    }

    fn run(&mut self, rx: Receiver<MediaIn>) {
        loop {
            // What came since the last wake. The net thread stamped each packet's arrival, so
            // reading packets only when a frame is due changes nothing the jitter buffers
            // measure, and saves the thread a wake per packet.
            loop {
                match rx.try_recv() {
                    Ok(input) => self.handle(input),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            self.tick(now);
            let wake = self.next_wake(now);
            if let Some(wait) = wake.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// When there is work next: the microphone's or the speaker's next frame if they keep
    /// their own clock (the synthetic ones), a device's poll otherwise; and at least once a
    /// frame, so commands and a closed inbox are seen within 20 ms.
    fn next_wake(&self, now: Instant) -> Instant {
        let poll = now + TICK;
        let mic = self.mic.as_ref().map(|m| m.next_due().unwrap_or(poll));
        let speaker = self.speaker.next_due().unwrap_or(poll);
        [mic, Some(speaker), Some(self.next_stats)].into_iter().flatten().fold(now + FRAME_TIME, Instant::min)
    }

    fn handle(&mut self, input: MediaIn) {
        match input {
            MediaIn::Audio { peer, ts, data, arrived } => {
                if !self.peers.contains_key(&peer) {
                    if self.peers.len() >= MAX_PEERS {
                        return;
                    }
                    let decoder = match Decoder::new() {
                        Ok(d) => d,
                        Err(e) => return (self.out)(MediaOut::Problem(format!("audio decoder: {e}"))),
                    };
                    let gain = self.gains.get(&peer).copied().unwrap_or(1.0);
                    let peer_state = Peer {
                        jitter: JitterBuffer::new(decoder),
                        gain,
                        recent: Vec::with_capacity(ANALYSIS + FRAME),
                        sum_squares: 0.0,
                        samples: 0,
                    };
                    self.peers.insert(peer, peer_state);
                }
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.jitter.insert(ts, &data, arrived);
                }
            }
            MediaIn::PeerLeft { peer } => {
                self.peers.remove(&peer);
                self.gains.remove(&peer);
            }
            MediaIn::Processing(settings) => {
                if let Some(apm) = self.apm.as_mut() {
                    apm.set(settings);
                }
            }
            MediaIn::Mute(on) => self.muted = on,
            MediaIn::Deafen(on) => self.deafened = on,
            MediaIn::Volume { peer, gain } => {
                let gain = if gain.is_finite() { gain.clamp(0.0, 2.0) } else { 1.0 };
                if self.gains.len() < MAX_PEERS * 2 || self.gains.contains_key(&peer) {
                    self.gains.insert(peer, gain);
                }
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.gain = gain;
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let mut frame = [0.0f32; FRAME];
        while let Some(mic) = self.mic.as_mut()
            && mic.read(now, &mut frame)
        {
            let ts = self.ts;
            self.ts += FRAME as u64;
            if let Some(apm) = self.apm.as_mut() {
                apm.capture(&mut frame);
            }
            if let Some(m) = &self.meter {
                m.set(level_db(&frame));
            }
            let captured = Instant::now();
            if let Some(t) = self.trace.as_mut() {
                t.captured(now, &frame);
                t.work.frames += 1;
                t.work.capture += captured - now;
            }
            // Muted, nothing is sent (the timestamps go on, so the peers see a gap, not loss).
            if self.muted {
                continue;
            }
            match self.encoder.encode(&frame) {
                Ok(packet) => (self.out)(MediaOut::Audio { ts, data: Arc::from(packet) }),
                Err(e) => (self.out)(MediaOut::Problem(format!("audio encoder: {e}"))),
            }
            if let Some(t) = self.trace.as_mut() {
                t.work.encode += captured.elapsed();
            }
        }
        self.play(now);
        if let Some(t) = self.trace.as_mut() {
            t.work.worst_tick = t.work.worst_tick.max(now.elapsed());
        }
        let mic = self.mic.as_mut().and_then(|m| m.problem(now));
        for problem in mic.into_iter().chain(self.speaker.problem(now)) {
            (self.out)(MediaOut::Problem(problem));
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            let stats = self.stats();
            (self.out)(MediaOut::Stats(stats));
            if let Some(t) = self.trace.as_mut() {
                t.report();
            }
        }
    }

    /// Each frame the speaker wants: every peer's next 20 ms, measured, mixed, limited.
    fn play(&mut self, now: Instant) {
        while self.speaker.wants(now) {
            let started = Instant::now();
            let mut mix = [0.0f32; FRAME];
            let mut one = [0.0f32; FRAME];
            for (key, p) in self.peers.iter_mut() {
                p.jitter.pull(&mut one);
                p.measure(&one);
                mixer::add(&mut mix, &one, p.gain);
                if let Some(t) = self.trace.as_mut() {
                    t.played(now, key, &one, p.jitter.level_ms());
                }
            }
            if let Some(t) = self.trace.as_mut() {
                t.work.played += 1;
                t.work.play += started.elapsed();
            }
            mixer::limit(&mut mix);
            if self.deafened {
                mix.fill(0.0);
            }
            // The echo canceller hears what the speaker plays.
            if let Some(apm) = self.apm.as_mut() {
                apm.render(&mix);
            }
            self.speaker.play(&mix);
        }
    }

    fn stats(&mut self) -> Vec<PeerAudioStats> {
        let mut out: Vec<PeerAudioStats> = self
            .peers
            .iter_mut()
            .map(|(k, p)| {
                let mean = if p.samples == 0 { 0.0 } else { p.sum_squares / p.samples as f64 };
                let level = db_of_mean_square(mean);
                let s = PeerAudioStats {
                    peer: *k,
                    jitter: p.jitter.stats(),
                    buffer_ms: p.jitter.level_ms().round() as u32,
                    target_ms: p.jitter.target_ms().round() as u32,
                    level_db: level,
                    freq_hz: dominant_frequency(&p.recent, SAMPLE_RATE),
                };
                p.sum_squares = 0.0;
                p.samples = 0;
                s
            })
            .collect();
        out.sort_by_key(|s| s.peer);
        out
    }
}

impl Peer {
    fn measure(&mut self, frame: &[f32]) {
        self.sum_squares += frame.iter().map(|s| f64::from(s * s)).sum::<f64>();
        self.samples += frame.len() as u64;
        if self.recent.len() + frame.len() > ANALYSIS {
            let drop = self.recent.len() + frame.len() - ANALYSIS;
            self.recent.drain(..drop.min(self.recent.len()));
        }
        self.recent.extend_from_slice(frame);
    }
}
