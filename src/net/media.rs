//! The net thread's side of a call's media: starts the media thread when we join a call and
//! stops it when we leave, hands it each peer's packets without waiting, and turns what it
//! sends back (encoded frames, stats, problems) into core inputs and events.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::media::apm::ApmSettings;
use crate::media::devices::{MicChoice, SpeakerChoice};
use crate::media::engine::{MediaEngine, MediaIn, MediaOut, PeerAudioStats};
use crate::media::meter::MicMeter;
use crate::media::video::engine::{CameraChoice, PeerVideoStats, VideoEngine, VideoPacket, VideoSettings};
use crate::media::video::tiles::Tiles;
use crate::protocol::core::MediaControl;
use crate::protocol::events::{AudioStats, ClientEvent, VideoStats};
use crate::protocol::identity::IdentityKey;

/// What the media threads may have waiting for the net thread: 50 audio and 30 video frames a
/// second, keyframe requests and stats reports. A net thread this far behind drops frames
/// rather than letting them age.
const OUTBOX: usize = 256;

pub struct Media {
    mic: MicChoice,
    speaker: SpeakerChoice,
    processing: ApmSettings,
    engine: Option<MediaEngine>,
    /// We are in a call (the engine sends and plays); otherwise a running engine only
    /// measures the microphone for Settings' meter.
    in_call: bool,
    /// Settings is open and wants the microphone's level.
    mic_test: bool,
    /// What the running engine was told, to start its successor the same way.
    muted: bool,
    deafened: bool,
    volumes: Vec<(IdentityKey, f32)>,
    meter: Arc<MicMeter>,
    video_settings: VideoSettings,
    /// The camera sends (in this call and the next).
    camera_on: bool,
    video: Option<VideoEngine>,
    /// The bitrate the core last gave our video (a new camera thread starts with it).
    video_bps: Option<u32>,
    /// The window's latest-frame slots (`None` headless: nothing is converted for a window).
    tiles: Option<Arc<Tiles>>,
    /// Each peer's last video report, sent with its audio report.
    video_stats: std::collections::HashMap<IdentityKey, PeerVideoStats>,
    tx: mpsc::Sender<MediaOut>,
    pub rx: mpsc::Receiver<MediaOut>,
}

impl Media {
    pub fn new(
        mic: MicChoice,
        speaker: SpeakerChoice,
        processing: ApmSettings,
        meter: Arc<MicMeter>,
        video: (VideoSettings, bool, Option<Arc<Tiles>>),
    ) -> Self {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let (video_settings, camera_on, tiles) = video;
        Self {
            mic,
            speaker,
            processing,
            engine: None,
            in_call: false,
            mic_test: false,
            muted: false,
            deafened: false,
            volumes: Vec::new(),
            meter,
            video_settings,
            camera_on,
            video: None,
            video_bps: None,
            tiles,
            video_stats: Default::default(),
            tx,
            rx,
        }
    }

    /// Switches echo cancellation, noise suppression and gain control, for this call and the next.
    pub fn set_processing(&mut self, processing: ApmSettings) {
        self.processing = processing;
        self.send(MediaIn::Processing(processing));
    }

    /// Switches to other devices; a running engine restarts on them (in a call the jitter
    /// buffers start over: a fraction of a second of the call is not heard).
    pub fn use_devices(&mut self, mic: Option<&str>, speaker: Option<&str>) -> Result<(), String> {
        if let Some(m) = mic {
            self.mic = m.parse()?;
        }
        if let Some(s) = speaker {
            self.speaker = s.parse()?;
        }
        if self.engine.is_some() {
            self.stop_engine();
            if let Some(problem) = self.start_engine() {
                return Err(problem);
            }
        }
        Ok(())
    }

    /// Settings' microphone test: outside a call the microphone is opened (and nothing sent
    /// or played) so its meter moves; in a call the call's engine measures anyway.
    pub fn mic_test(&mut self, on: bool) -> Option<String> {
        self.mic_test = on;
        match (on, self.in_call, self.engine.is_some()) {
            (true, false, false) => self.start_engine(),
            (false, false, true) => {
                self.stop_engine();
                None
            }
            _ => None,
        }
    }

    /// Carries out the core's `MediaControl`; a problem is returned for the front-end.
    pub fn control(&mut self, control: MediaControl) -> Option<String> {
        match control {
            MediaControl::Start { muted, deafened } => {
                (self.muted, self.deafened) = (muted, deafened);
                self.in_call = true;
                // A microphone test gives way to the call.
                self.stop_engine();
                self.start_video();
                self.start_engine()
            }
            MediaControl::Stop => {
                self.in_call = false;
                // The next call measures its own paths.
                self.video_bps = None;
                self.stop_engine();
                if let Some(video) = self.video.take() {
                    tokio::task::spawn_blocking(move || drop(video));
                }
                self.video_stats.clear();
                self.volumes.clear();
                if self.mic_test { self.start_engine() } else { None }
            }
            MediaControl::PeerLeft(peer) => {
                if let Some(v) = self.video.as_mut() {
                    v.peer_left(peer);
                }
                self.video_stats.remove(&peer);
                self.send(MediaIn::PeerLeft { peer })
            }
            MediaControl::Mute(on) => {
                self.muted = on;
                self.send(MediaIn::Mute(on))
            }
            MediaControl::Camera(on) => {
                self.camera(on);
                None
            }
            MediaControl::VideoBitrate(bps) => {
                self.video_bps = Some(bps);
                if let Some(v) = self.video.as_mut() {
                    v.set_bitrate(bps);
                }
                None
            }
            MediaControl::Deafen(on) => {
                self.deafened = on;
                self.send(MediaIn::Deafen(on))
            }
            MediaControl::Volume { peer, gain } => {
                self.volumes.retain(|(p, _)| *p != peer);
                if self.volumes.len() < 64 {
                    self.volumes.push((peer, gain));
                }
                self.send(MediaIn::Volume { peer, gain })
            }
        }
    }

    /// The call's video threads: the camera's (if one is chosen) and, as frames come, a
    /// decoder per peer.
    fn start_video(&mut self) {
        let tx = self.tx.clone();
        let out = Arc::new(move |m: MediaOut| {
            let _ = tx.try_send(m);
        });
        let mut video = VideoEngine::start(&self.video_settings, self.camera_on, self.tiles.clone(), out);
        if let Some(bps) = self.video_bps {
            video.set_bitrate(bps);
        }
        self.video = Some(video);
    }

    /// Turns our camera on or off, for this call and the next.
    fn camera(&mut self, on: bool) {
        self.camera_on = on;
        if let Some(v) = self.video.as_mut() {
            v.camera_on(on);
        }
    }

    /// Calls take their video from `camera` now (a call under way switches at once). Returns
    /// whether there is a camera to send.
    pub fn use_camera(&mut self, settings: VideoSettings) -> bool {
        self.video_settings = settings;
        if let Some(old) =
            self.video.as_mut().and_then(|v| v.use_camera(&self.video_settings, self.camera_on))
        {
            // The old camera's thread may take a moment to let go of its device.
            tokio::task::spawn_blocking(move || drop(old));
        }
        if let (Some(v), Some(bps)) = (self.video.as_mut(), self.video_bps) {
            v.set_bitrate(bps);
        }
        self.camera_available()
    }

    pub fn video_settings(&self) -> &VideoSettings {
        &self.video_settings
    }

    /// Whether a camera is chosen (whether it works, its thread says in a problem).
    pub fn camera_available(&self) -> bool {
        self.video_settings.camera != CameraChoice::None
    }

    /// A member asked for a keyframe of our video.
    pub fn want_keyframe(&mut self) {
        if let Some(v) = self.video.as_mut() {
            v.want_keyframe();
        }
    }

    pub fn video(&mut self, peer: IdentityKey, packet: VideoPacket) {
        if let Some(v) = self.video.as_mut() {
            v.frame(peer, packet);
        }
    }

    /// A peer's video report, kept for its next `media_stats`.
    pub fn video_report(&mut self, stats: PeerVideoStats) {
        if let Some(peer) = stats.peer
            && (self.video_stats.len() < 64 || self.video_stats.contains_key(&peer))
        {
            self.video_stats.insert(peer, stats);
        }
    }

    /// Peers with a video report and no audio in `heard`.
    pub fn video_only(&self, heard: &[PeerAudioStats]) -> Vec<IdentityKey> {
        let mut only: Vec<IdentityKey> =
            self.video_stats.keys().filter(|k| !heard.iter().any(|s| s.peer == **k)).copied().collect();
        only.sort();
        only
    }

    /// The last video report of `peer`.
    pub fn video_stats(&self, peer: &IdentityKey) -> Option<&PeerVideoStats> {
        self.video_stats.get(peer)
    }

    /// The engine for a call, or for the microphone test: that one plays nothing and sends
    /// nothing (it starts muted; the level is measured before mute).
    fn start_engine(&mut self) -> Option<String> {
        let tx = self.tx.clone();
        // Called on the media thread: never waits (a full outbox drops the frame).
        let out = Box::new(move |m: MediaOut| {
            let _ = tx.try_send(m);
        });
        let (speaker, muted, deafened) = match self.in_call {
            true => (self.speaker.clone(), self.muted, self.deafened),
            false => (SpeakerChoice::None, true, true),
        };
        let meter = self.meter.clone();
        match MediaEngine::start(self.mic.clone(), speaker, self.processing, (muted, deafened), meter, out) {
            Ok(mut engine) => {
                for &(peer, gain) in &self.volumes {
                    engine.send(MediaIn::Volume { peer, gain });
                }
                self.engine = Some(engine);
                None
            }
            Err(e) => Some(format!("the media thread could not start: {e}")),
        }
    }

    fn stop_engine(&mut self) {
        // Joining it waits for the devices to close: not on this thread.
        if let Some(engine) = self.engine.take() {
            tokio::task::spawn_blocking(move || drop(engine));
        }
    }

    fn send(&mut self, input: MediaIn) -> Option<String> {
        if let Some(e) = self.engine.as_mut() {
            e.send(input);
        }
        None
    }

    pub fn audio(&mut self, peer: IdentityKey, ts: u64, data: Vec<u8>, arrived: Instant) {
        if let Some(e) = self.engine.as_mut() {
            e.send(MediaIn::Audio { peer, ts, data, arrived });
        }
    }
}

/// Lists the sound system's devices and the cameras on a blocking thread and sends the
/// `devices` event (or an error in words).
pub fn list_devices(events: mpsc::Sender<ClientEvent>) {
    tokio::task::spawn_blocking(move || {
        let cameras = match crate::media::video::webcam::list_cameras() {
            Ok(c) => c.into_iter().map(|c| [c.name, c.description]).collect(),
            Err(e) => {
                let _ = events.blocking_send(ClientEvent::error("media", e));
                Vec::new()
            }
        };
        let event = match crate::media::audio_io::list_devices() {
            Ok(d) => ClientEvent::Devices {
                host: d.host,
                inputs: d.inputs.into_iter().map(|(n, desc)| [n, desc]).collect(),
                outputs: d.outputs.into_iter().map(|(n, desc)| [n, desc]).collect(),
                default_input: d.default_input,
                default_output: d.default_output,
                cameras,
            },
            Err(e) => ClientEvent::error("media", e),
        };
        let _ = events.blocking_send(event);
    });
}

/// One peer's video in the front-ends' words.
pub fn video_stats(v: &PeerVideoStats) -> VideoStats {
    VideoStats {
        width: v.width,
        height: v.height,
        fps: v.fps.round() as u32,
        frames_decoded: v.frames_decoded,
        keyframes: v.keyframes,
        frames_dropped: v.frames_dropped,
        keyframe_requests: v.keyframe_requests,
        kbps: v.kbps,
        latency_ms: v.latency_ms,
        frame: v.last_frame,
    }
}

/// One peer's stats in the front-ends' words.
pub fn stats_event(s: &PeerAudioStats, rtt_ms: Option<u64>, video: Option<&PeerVideoStats>) -> ClientEvent {
    ClientEvent::MediaStats {
        peer: s.peer.fingerprint().to_string(),
        rtt_ms,
        video: video.map(video_stats),
        audio: AudioStats {
            packets: s.jitter.packets,
            lost: s.jitter.lost,
            recovered_fec: s.jitter.recovered_fec,
            concealed_ms: s.jitter.concealed_ms,
            late: s.jitter.late,
            jitter_buffer_ms: s.buffer_ms,
            target_ms: s.target_ms,
            level_db: s.level_db.round() as i32,
            freq_hz: s.freq_hz.map(|f| f.round() as u32),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits (real time: the media thread runs at the clock's pace) until `done`.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn drain_audio(media: &mut Media) -> usize {
        std::iter::from_fn(|| media.rx.try_recv().ok())
            .filter(|m| matches!(m, MediaOut::Audio { .. }))
            .count()
    }

    /// Settings' microphone test opens the microphone and sends nothing; a call takes it over
    /// and sends; after the call the test goes on while Settings stays open, and closing it
    /// lets the microphone go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_microphone_test_measures_without_sending_and_gives_way_to_a_call() {
        let meter = Arc::new(MicMeter::default());
        let mut media = Media::new(
            MicChoice::Tone(440.0),
            SpeakerChoice::Null,
            ApmSettings::default(),
            meter.clone(),
            Default::default(),
        );
        assert_eq!(media.mic_test(true), None);
        until("the meter to read the tone", || meter.level_db().is_some()).await;
        // A sine at a quarter of full scale is -15 dBFS.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let db = meter.level_db().unwrap_or(-100.0);
        assert!((db + 15.05).abs() < 0.5, "{db} dB");
        assert_eq!(drain_audio(&mut media), 0, "a microphone test sends nothing");

        assert_eq!(media.control(MediaControl::Start { muted: false, deafened: false }), None);
        let mut sent = 0;
        until("the call to send frames", || {
            sent += drain_audio(&mut media);
            sent >= 5
        })
        .await;

        assert_eq!(media.control(MediaControl::Stop), None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        drain_audio(&mut media);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(drain_audio(&mut media), 0, "after the call, the test sends nothing");
        assert!(meter.level_db().is_some(), "Settings is still open: the meter still reads");

        assert_eq!(media.mic_test(false), None);
        until("the microphone to close", || meter.level_db().is_none()).await;
    }
}
