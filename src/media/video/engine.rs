//! The call's video threads. One camera thread captures (the test pattern, or a webcam),
//! shows the picture in the self-view and encodes it **once**; the net thread writes that one
//! encoded frame to every peer. Per peer, a decoder thread decodes what the peer sends, reads
//! the test pattern's stamp when there is one, publishes the picture to the peer's tile and
//! reports once a second.
//!
//! Loss: a frame that does not follow the last one (str0m lost a packet NACK could not bring
//! back), or one the decoder refuses, leaves the decoder waiting for a keyframe; it asks the
//! peer for one (PLI, at most every [`ASK_AGAIN`]) and decodes nothing until it comes, so the
//! tile freezes rather than smearing.
//!
//! The queues: the camera thread's commands and each decoder's frames are bounded
//! `sync_channel`s the net thread fills with `try_send` (a full decoder queue drops the frame
//! and marks the next as not contiguous); everything out goes through `out`, which the net
//! side makes non-blocking.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use super::frame::{I420, VideoSize};
use super::h264::{H264Decoder, H264Encoder, ceiling_bps};
use super::ladder::Ladder;
use super::pattern::{TestPattern, age_ms, read_stamp, wall_ms};
use super::tiles::{TileKey, TileWriter, Tiles};
use super::webcam::Webcam;
use super::{MAX_DECODERS, VIDEO_CLOCK};
use crate::media::engine::MediaOut;
use crate::protocol::identity::IdentityKey;

/// A decoder waiting for a keyframe asks again this often (a PLI can be lost too).
pub const ASK_AGAIN: Duration = Duration::from_millis(300);
/// Frames waiting for one peer's decoder: a second at 30 fps. More means it cannot keep up,
/// and the frame is dropped (the decoder then waits for a keyframe).
const DECODER_INBOX: usize = 30;
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Where a call's video comes from (`--camera`, Settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraChoice {
    /// Moving bars with the frame number and capture time in the pixels.
    TestPattern,
    /// The system's first camera.
    Default,
    /// A camera by name.
    Device(String),
    /// Send no video.
    None,
}

impl FromStr for CameraChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "test-pattern" => Self::TestPattern,
            "default" => Self::Default,
            "none" => Self::None,
            "" => return Err("name a camera: test-pattern, default, none or a device".into()),
            name => Self::Device(name.to_string()),
        })
    }
}

/// What the camera sends: which one, its size and frame rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoSettings {
    pub camera: CameraChoice,
    pub size: VideoSize,
    pub fps: u32,
}

impl VideoSettings {
    /// The lowest and highest frame rates a camera is asked for.
    pub const FPS: std::ops::RangeInclusive<u32> = 1..=60;

    /// These settings with another camera, and a size and frame rate if given (as typed).
    pub fn with(&self, camera: &str, size: Option<&str>, fps: Option<u32>) -> Result<Self, String> {
        let mut s = self.clone();
        s.camera = camera.parse()?;
        if let Some(size) = size {
            s.size = size.parse()?;
        }
        if let Some(fps) = fps {
            if !Self::FPS.contains(&fps) {
                return Err(format!("a frame rate of {fps}: choose 1 to 60"));
            }
            s.fps = fps;
        }
        Ok(s)
    }
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self { camera: CameraChoice::None, size: VideoSize::HD, fps: 30 }
    }
}

/// One frame from a peer, as str0m put it together.
pub struct VideoPacket {
    /// RTP timestamp, 90 kHz.
    pub ts: u64,
    pub data: Arc<[u8]>,
    pub keyframe: bool,
    /// False if frames were lost before this one.
    pub contiguous: bool,
    pub arrived: Instant,
}

/// One peer's video over the last second, and since the call began.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerVideoStats {
    pub peer: Option<IdentityKey>,
    pub width: u32,
    pub height: u32,
    /// Pictures decoded in the last second.
    pub fps: f32,
    pub frames_decoded: u64,
    pub keyframes: u64,
    /// Frames dropped while waiting for a keyframe (or because the decoder was behind).
    pub frames_dropped: u64,
    pub keyframe_requests: u64,
    pub kbps: u32,
    /// Capture to decoded (median of the last second), read from the test pattern's pixels.
    pub latency_ms: Option<u32>,
    /// The highest frame number read from the pattern.
    pub last_frame: Option<u32>,
}

type Out = Arc<dyn Fn(MediaOut) + Send + Sync>;

pub(crate) enum CameraIn {
    On(bool),
    Keyframe,
    /// What the network carries for our video now (bit/s).
    Bitrate(u32),
    /// A webcam published a picture.
    Picture,
    /// The owner lets go: the webcam's reader holds a sender too, so the queue never closes.
    Stop,
}

struct DecoderThread {
    inbox: SyncSender<VideoPacket>,
    /// A frame was dropped here: the next one is not contiguous.
    gap: bool,
    thread: std::thread::JoinHandle<()>,
}

/// The camera thread: its commands, and the thread to wait for (dropping this closes the queue
/// and waits: the camera lets go of its device).
pub struct CameraHandle {
    tx: Option<SyncSender<CameraIn>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CameraHandle {
    fn spawn(settings: &VideoSettings, on: bool, tiles: Option<Arc<Tiles>>, out: Out) -> Option<Self> {
        if settings.camera == CameraChoice::None {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let (settings, out2, wake) = (settings.clone(), out.clone(), tx.clone());
        let spawned = std::thread::Builder::new().name("kith-camera".into()).spawn(move || {
            let tile = tiles.map(|t| t.open(TileKey::Me));
            CameraThread::run(&settings, on, tile, out2, rx, wake)
        });
        match spawned {
            Ok(thread) => Some(Self { tx: Some(tx), thread: Some(thread) }),
            Err(e) => {
                out(MediaOut::Problem(format!("the camera thread could not start: {e}")));
                None
            }
        }
    }
}

impl Drop for CameraHandle {
    fn drop(&mut self) {
        // Waits for room in the queue (the thread drains it between pictures); a thread that
        // already ended refuses at once.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(CameraIn::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The call's video: the camera thread (if a camera was chosen) and a decoder per peer.
pub struct VideoEngine {
    camera: Option<CameraHandle>,
    decoders: HashMap<IdentityKey, DecoderThread>,
    tiles: Option<Arc<Tiles>>,
    out: Out,
}

impl VideoEngine {
    /// Starts the camera thread (sending when `on`); `tiles` is the window's, `None` headless.
    pub fn start(settings: &VideoSettings, on: bool, tiles: Option<Arc<Tiles>>, out: Out) -> Self {
        let camera = CameraHandle::spawn(settings, on, tiles.clone(), out.clone());
        Self { camera, decoders: HashMap::new(), tiles, out }
    }

    /// Captures from `settings.camera` from now on. Returns the old camera thread, which its
    /// owner drops where waiting for it is allowed.
    pub fn use_camera(&mut self, settings: &VideoSettings, on: bool) -> Option<CameraHandle> {
        let new = CameraHandle::spawn(settings, on, self.tiles.clone(), self.out.clone());
        std::mem::replace(&mut self.camera, new)
    }

    fn tell_camera(&mut self, input: CameraIn) {
        if let Some(tx) = self.camera.as_ref().and_then(|c| c.tx.as_ref()) {
            let _ = tx.try_send(input);
        }
    }

    pub fn camera_on(&mut self, on: bool) {
        self.tell_camera(CameraIn::On(on));
    }

    /// The bitrate the network carries for our one encoding (the weakest member's path).
    pub fn set_bitrate(&mut self, bps: u32) {
        self.tell_camera(CameraIn::Bitrate(bps));
    }

    /// A peer asked for a keyframe (or joined).
    pub fn want_keyframe(&mut self) {
        self.tell_camera(CameraIn::Keyframe);
    }

    /// A frame from `peer` for its decoder (started with its first frame, up to
    /// [`MAX_DECODERS`]); never waits.
    pub fn frame(&mut self, peer: IdentityKey, mut packet: VideoPacket) {
        if !self.decoders.contains_key(&peer) {
            if self.decoders.len() >= MAX_DECODERS {
                return;
            }
            let Some(d) = self.start_decoder(peer) else { return };
            self.decoders.insert(peer, d);
        }
        let Some(d) = self.decoders.get_mut(&peer) else { return };
        packet.contiguous &= !d.gap;
        match d.inbox.try_send(packet) {
            Ok(()) => d.gap = false,
            Err(TrySendError::Full(_)) => d.gap = true,
            Err(TrySendError::Disconnected(_)) => {
                self.decoders.remove(&peer);
            }
        }
    }

    fn start_decoder(&mut self, peer: IdentityKey) -> Option<DecoderThread> {
        let (tx, rx) = std::sync::mpsc::sync_channel(DECODER_INBOX);
        let out = self.out.clone();
        let tile = self.tiles.clone();
        let spawned = std::thread::Builder::new().name("kith-video".into()).spawn(move || {
            let tile = tile.map(|t| t.open(TileKey::Peer(peer.fingerprint())));
            match H264Decoder::new() {
                Ok(decoder) => PeerDecoder::new(peer, decoder, tile, out).run(rx),
                Err(e) => out(MediaOut::Problem(format!("video decoder: {e}"))),
            }
        });
        match spawned {
            Ok(thread) => Some(DecoderThread { inbox: tx, gap: false, thread }),
            Err(e) => {
                (self.out)(MediaOut::Problem(format!("a video thread could not start: {e}")));
                None
            }
        }
    }

    /// `peer` left the call: its decoder ends.
    pub fn peer_left(&mut self, peer: IdentityKey) {
        self.decoders.remove(&peer);
    }
}

impl Drop for VideoEngine {
    /// Closes every queue and waits for the threads (the camera lets go of its device).
    fn drop(&mut self) {
        drop(self.camera.take());
        let decoders: Vec<_> = self.decoders.drain().map(|(_, d)| d.thread).collect();
        for t in decoders {
            let _ = t.join();
        }
    }
}

/// What captures pictures: the test pattern (on the camera thread's clock) or a webcam (on
/// its own thread, which wakes the camera thread with [`CameraIn::Picture`]).
trait Camera {
    /// The next picture, if one is due (or came) by `now`.
    fn capture(&mut self, now: Instant) -> Option<&I420>;
    /// When to look again if nothing wakes the thread (`None`: at once).
    fn next_due(&self) -> Option<Instant>;
    /// The size of its pictures: the ladder's full size.
    fn size(&self) -> VideoSize;
}

impl Camera for TestPattern {
    fn capture(&mut self, now: Instant) -> Option<&I420> {
        TestPattern::capture(self, now, wall_ms())
    }

    fn next_due(&self) -> Option<Instant> {
        TestPattern::next_due(self)
    }

    fn size(&self) -> VideoSize {
        TestPattern::size(self)
    }
}

impl Camera for Webcam {
    fn capture(&mut self, _now: Instant) -> Option<&I420> {
        self.newer()
    }

    fn next_due(&self) -> Option<Instant> {
        // Its pictures wake the thread; this is only how long commands may wait otherwise.
        Some(Instant::now() + Duration::from_millis(100))
    }

    fn size(&self) -> VideoSize {
        Webcam::size(self)
    }
}

fn open_camera(
    settings: &VideoSettings,
    wake: SyncSender<CameraIn>,
    out: Out,
) -> Result<Box<dyn Camera>, String> {
    let name = match &settings.camera {
        CameraChoice::TestPattern => return Ok(Box::new(TestPattern::new(settings.size, settings.fps))),
        CameraChoice::None => return Err("no camera chosen".into()),
        CameraChoice::Default => None,
        CameraChoice::Device(name) => Some(name.as_str()),
    };
    let woken = Box::new(move || {
        // A full queue already has the thread awake.
        let _ = wake.try_send(CameraIn::Picture);
    });
    let problem = Box::new(move |p: String| out(MediaOut::Problem(format!("camera: {p}"))));
    let webcam = Webcam::open(name, settings.size, settings.fps, woken, problem)?;
    Ok(Box::new(webcam))
}

struct CameraThread {
    /// A webcam is closed while the camera is off (its light goes out) and opened again when
    /// it is turned on; the test pattern stays (its frame numbers go on).
    camera: Option<Box<dyn Camera>>,
    wake: SyncSender<CameraIn>,
    /// The network's bitrate for our video, once measured; the size it is encoded at; the
    /// buffer a halved picture is made in.
    target_bps: Option<u32>,
    ladder: Ladder,
    scaled: I420,
    /// Bytes encoded since then: the ladder hears the rate each second.
    made: (Instant, u64),
    encoder: Option<H264Encoder>,
    settings: VideoSettings,
    on: bool,
    tile: Option<TileWriter>,
    out: Out,
    /// RTP time of the first picture, random (RFC 3550), and when it was taken.
    ts_base: u64,
    started: Instant,
}

impl CameraThread {
    fn run(
        settings: &VideoSettings,
        on: bool,
        tile: Option<TileWriter>,
        out: Out,
        rx: Receiver<CameraIn>,
        wake: SyncSender<CameraIn>,
    ) {
        let ts_base = u64::from(rand_core::TryRngCore::try_next_u32(&mut rand_core::OsRng).unwrap_or(0));
        let mut t = Self {
            camera: None,
            wake,
            encoder: None,
            settings: settings.clone(),
            on,
            tile,
            out,
            ts_base,
            started: Instant::now(),
            target_bps: None,
            ladder: Ladder::new(settings.size, Instant::now()),
            scaled: I420::black(VideoSize::MIN),
            made: (Instant::now(), 0),
        };
        // A camera that cannot be opened (said in words) is tried again when turned on.
        t.on = on && t.open();
        loop {
            let now = Instant::now();
            // Off, nothing is captured (a webcam's light goes out); commands still come.
            let wait = match (t.on, &t.camera) {
                (true, Some(c)) => c.next_due().map_or(Duration::ZERO, |d| d.saturating_duration_since(now)),
                _ => Duration::from_millis(100),
            };
            match rx.recv_timeout(wait) {
                Ok(CameraIn::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(input) => t.handle(input),
                Err(RecvTimeoutError::Timeout) => {}
            }
            loop {
                match rx.try_recv() {
                    Ok(CameraIn::Stop) | Err(TryRecvError::Disconnected) => return,
                    Ok(input) => t.handle(input),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if t.on {
                t.tick(Instant::now());
            }
        }
    }

    /// Opens the chosen camera if it is not open; false (said in words) if it cannot be.
    fn open(&mut self) -> bool {
        if self.camera.is_some() {
            return true;
        }
        match open_camera(&self.settings, self.wake.clone(), self.out.clone()) {
            Ok(c) => {
                self.ladder = Ladder::new(c.size(), Instant::now());
                self.camera = Some(c);
                true
            }
            Err(problem) => {
                (self.out)(MediaOut::Problem(format!("camera: {problem}")));
                false
            }
        }
    }

    fn handle(&mut self, input: CameraIn) {
        match input {
            CameraIn::On(on) => {
                if on
                    && !self.on
                    && let Some(e) = self.encoder.as_mut()
                {
                    e.want_keyframe();
                }
                let webcam = matches!(self.settings.camera, CameraChoice::Default | CameraChoice::Device(_));
                if !on && webcam {
                    self.camera = None;
                }
                self.on = on && self.open();
            }
            CameraIn::Picture | CameraIn::Stop => {}
            CameraIn::Keyframe => {
                if let Some(e) = self.encoder.as_mut() {
                    e.want_keyframe();
                }
            }
            CameraIn::Bitrate(bps) => {
                self.target_bps = Some(bps);
                if let Some(e) = self.encoder.as_mut()
                    && let Err(problem) = e.set_bitrate(bps)
                {
                    tracing::debug!("video bitrate: {problem}");
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let Some(picture) = self.camera.as_mut().and_then(|c| c.capture(now)) else { return };
        let ts = self.ts_base + (now - self.started).as_micros() as u64 * VIDEO_CLOCK / 1_000_000;
        if let Some(tile) = self.tile.as_mut() {
            let view = picture.picture();
            if let Err(e) = tile.publish(&view) {
                tracing::debug!("self-view: {e}");
            }
        }
        let started = Instant::now();
        // The ladder's size for everyone; a new size is a new encoder (its first picture is
        // a keyframe with the new parameter sets, which every decoder follows).
        let size = self.ladder.size(now, self.target_bps);
        let picture = match size.width as usize == picture.width {
            true => picture,
            false => {
                picture.halve_into(&mut self.scaled);
                &self.scaled
            }
        };
        if self.encoder.as_ref().is_none_or(|e| e.size() != size) {
            let ceiling = ceiling_bps(size);
            match H264Encoder::new(size, self.settings.fps, ceiling) {
                Ok(mut e) => {
                    if let Some(bps) = self.target_bps {
                        let _ = e.set_bitrate(bps);
                    }
                    tracing::debug!(
                        width = size.width,
                        height = size.height,
                        bps = e.bitrate(),
                        "video encoder"
                    );
                    self.encoder = Some(e);
                }
                Err(e) => {
                    (self.out)(MediaOut::Problem(format!("video encoder: {e}")));
                    self.on = false;
                    return;
                }
            }
        }
        let Some(encoder) = self.encoder.as_mut() else { return };
        let encoded = encoder.encode(now, picture);
        let interval = Duration::from_secs(1) / self.settings.fps.max(1);
        self.ladder.encoded(started.elapsed(), interval);
        if let Ok(Some(e)) = &encoded {
            self.made.1 += e.data.len() as u64;
        }
        let (since, bytes) = self.made;
        if now.saturating_duration_since(since) >= Duration::from_secs(1) {
            let secs = now.saturating_duration_since(since).as_secs_f64();
            self.ladder.made((bytes as f64 * 8.0 / secs) as u32);
            self.made = (now, 0);
        }
        match encoded {
            Ok(Some(encoded)) => {
                (self.out)(MediaOut::Video { ts, data: Arc::from(encoded.data), keyframe: encoded.keyframe })
            }
            Ok(None) => {}
            Err(e) => (self.out)(MediaOut::Problem(format!("video encoder: {e}"))),
        }
    }
}

struct PeerDecoder {
    peer: IdentityKey,
    decoder: H264Decoder,
    tile: Option<TileWriter>,
    out: Out,
    waiting_for_keyframe: bool,
    last_ask: Option<Instant>,
    stats: PeerVideoStats,
    decoded_since: u64,
    bytes_since: u64,
    latencies: VecDeque<u32>,
    next_stats: Instant,
    last_report: Instant,
}

impl PeerDecoder {
    fn new(peer: IdentityKey, decoder: H264Decoder, tile: Option<TileWriter>, out: Out) -> Self {
        let now = Instant::now();
        Self {
            peer,
            decoder,
            tile,
            out,
            waiting_for_keyframe: true,
            last_ask: None,
            stats: PeerVideoStats { peer: Some(peer), ..Default::default() },
            decoded_since: 0,
            bytes_since: 0,
            latencies: VecDeque::new(),
            next_stats: now + STATS_EVERY,
            last_report: now,
        }
    }

    fn run(mut self, rx: Receiver<VideoPacket>) {
        loop {
            let wait = self.next_stats.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(packet) => self.decode(packet),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= self.next_stats {
                self.report(now);
            }
        }
    }

    fn decode(&mut self, packet: VideoPacket) {
        self.bytes_since += packet.data.len() as u64;
        if !packet.contiguous {
            self.waiting_for_keyframe = true;
        }
        if self.waiting_for_keyframe && !packet.keyframe {
            self.stats.frames_dropped += 1;
            return self.ask_for_keyframe(packet.arrived);
        }
        self.waiting_for_keyframe = false;
        let (tile, stats, latencies) = (&mut self.tile, &mut self.stats, &mut self.latencies);
        let decoded = self.decoder.decode(&packet.data, |picture| {
            (stats.width, stats.height) = (picture.width as u32, picture.height as u32);
            if let Some(stamp) = read_stamp(picture.y, picture.y_stride, picture.width, picture.height) {
                stats.last_frame = Some(stats.last_frame.map_or(stamp.frame, |f| f.max(stamp.frame)));
                if let Some(age) = age_ms(stamp, wall_ms())
                    && latencies.len() < 240
                {
                    latencies.push_back(age);
                }
            }
            if let Some(tile) = tile.as_mut()
                && let Err(e) = tile.publish(picture)
            {
                tracing::debug!("video tile: {e}");
            }
        });
        match decoded {
            Ok(Some(())) => {
                self.stats.frames_decoded += 1;
                self.decoded_since += 1;
                if packet.keyframe {
                    self.stats.keyframes += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(peer = %self.peer.fingerprint(), "video frame not decoded: {e}");
                self.waiting_for_keyframe = true;
                self.stats.frames_dropped += 1;
                self.ask_for_keyframe(packet.arrived);
            }
        }
    }

    fn ask_for_keyframe(&mut self, now: Instant) {
        if self.last_ask.is_some_and(|t| now < t + ASK_AGAIN) {
            return;
        }
        self.last_ask = Some(now);
        self.stats.keyframe_requests += 1;
        (self.out)(MediaOut::WantKeyframe { peer: self.peer });
    }

    fn report(&mut self, now: Instant) {
        let secs = (now - self.last_report).as_secs_f32().max(0.001);
        self.stats.fps = self.decoded_since as f32 / secs;
        self.stats.kbps = (self.bytes_since as f32 * 8.0 / 1000.0 / secs).round() as u32;
        let mut l: Vec<u32> = self.latencies.drain(..).collect();
        l.sort_unstable();
        self.stats.latency_ms = l.get(l.len() / 2).copied();
        (self.decoded_since, self.bytes_since) = (0, 0);
        self.last_report = now;
        self.next_stats = now + STATS_EVERY;
        (self.out)(MediaOut::VideoStats(self.stats.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn camera_choices_are_read() {
        assert_eq!("test-pattern".parse(), Ok(CameraChoice::TestPattern));
        assert_eq!("none".parse(), Ok(CameraChoice::None));
        assert_eq!("default".parse(), Ok(CameraChoice::Default));
        assert_eq!("USB Camera".parse(), Ok(CameraChoice::Device("USB Camera".into())));
        assert!("".parse::<CameraChoice>().is_err());
    }

    /// The camera thread's frames fed to a decoder thread as the net thread would: pictures
    /// decoded at the frame rate with their stamps; a lost frame freezes the decoder until the
    /// keyframe it asks for comes.
    #[test]
    fn the_camera_to_a_decoder_and_a_loss_recovered_by_a_keyframe() {
        let seen: Arc<Mutex<Vec<MediaOut>>> = Arc::default();
        let s = seen.clone();
        let out: Out = Arc::new(move |m| s.lock().unwrap().push(m));
        let settings = VideoSettings {
            camera: CameraChoice::TestPattern,
            size: VideoSize::new(320, 180).unwrap(),
            fps: 30,
        };
        let mut engine = VideoEngine::start(&settings, true, None, out);
        let peer = IdentityKey([7; 32]);
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut fed = 0;
        let mut dropped_one = false;
        let mut asked = false;
        while Instant::now() < deadline {
            let outs: Vec<MediaOut> = std::mem::take(&mut *seen.lock().unwrap());
            for m in outs {
                match m {
                    MediaOut::Video { ts, data, keyframe } => {
                        fed += 1;
                        // Frame 40 is lost on the way.
                        if fed == 40 {
                            dropped_one = true;
                            continue;
                        }
                        let packet = VideoPacket {
                            ts,
                            data,
                            keyframe,
                            contiguous: !(dropped_one && fed == 41),
                            arrived: Instant::now(),
                        };
                        engine.frame(peer, packet);
                    }
                    MediaOut::WantKeyframe { peer: p } => {
                        assert_eq!(p, peer);
                        asked = true;
                        engine.want_keyframe();
                    }
                    MediaOut::VideoStats(s) if fed > 75 => {
                        assert!(asked, "the gap asked for a keyframe");
                        assert_eq!((s.width, s.height), (320, 180));
                        assert!(s.keyframes >= 2, "the first and the one asked for: {s:?}");
                        assert!(s.frames_dropped >= 1 && s.frames_dropped < 20, "{s:?}");
                        assert!(s.fps > 20.0, "{s:?}");
                        assert!(s.last_frame.is_some_and(|f| f > 60), "{s:?}");
                        assert!(s.latency_ms.is_some_and(|l| l < 200), "{s:?}");
                        return;
                    }
                    MediaOut::Problem(p) => panic!("{p}"),
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no stats after 75 frames (fed {fed})");
    }
}
