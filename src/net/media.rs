//! The net thread's side of a call's media: starts the media thread when we join a call and
//! stops it when we leave, hands it each peer's packets without waiting, and turns what it
//! sends back (encoded frames, stats, problems) into core inputs and events.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::media::apm::ApmSettings;
use crate::media::devices::{MicChoice, SpeakerChoice};
use crate::media::engine::{MediaEngine, MediaIn, MediaOut, PeerAudioStats};
use crate::protocol::core::MediaControl;
use crate::protocol::events::{AudioStats, ClientEvent};
use crate::protocol::identity::IdentityKey;

/// What the media thread may have waiting for the net thread: 50 frames a second plus a
/// stats report. A net thread this far behind drops frames rather than letting them age.
const OUTBOX: usize = 64;

pub struct Media {
    mic: MicChoice,
    speaker: SpeakerChoice,
    processing: ApmSettings,
    engine: Option<MediaEngine>,
    /// What the running engine was told, to start its successor the same way.
    muted: bool,
    deafened: bool,
    volumes: Vec<(IdentityKey, f32)>,
    tx: mpsc::Sender<MediaOut>,
    pub rx: mpsc::Receiver<MediaOut>,
}

impl Media {
    pub fn new(mic: MicChoice, speaker: SpeakerChoice, processing: ApmSettings) -> Self {
        let (tx, rx) = mpsc::channel(OUTBOX);
        Self {
            mic,
            speaker,
            processing,
            engine: None,
            muted: false,
            deafened: false,
            volumes: Vec::new(),
            tx,
            rx,
        }
    }

    /// Switches echo cancellation, noise suppression and gain control, for this call and the next.
    pub fn set_processing(&mut self, processing: ApmSettings) {
        self.processing = processing;
        self.send(MediaIn::Processing(processing));
    }

    /// Switches to other devices; a running call restarts its media thread on them (the
    /// jitter buffers start over: a fraction of a second of the call is not heard).
    pub fn use_devices(&mut self, mic: Option<&str>, speaker: Option<&str>) -> Result<(), String> {
        if let Some(m) = mic {
            self.mic = m.parse()?;
        }
        if let Some(s) = speaker {
            self.speaker = s.parse()?;
        }
        if self.engine.is_some() {
            self.control(MediaControl::Stop);
            if let Some(problem) =
                self.control(MediaControl::Start { muted: self.muted, deafened: self.deafened })
            {
                return Err(problem);
            }
            for (peer, gain) in self.volumes.clone() {
                self.send(MediaIn::Volume { peer, gain });
            }
        }
        Ok(())
    }

    /// Carries out the core's `MediaControl`; a problem is returned for the front-end.
    pub fn control(&mut self, control: MediaControl) -> Option<String> {
        match control {
            MediaControl::Start { muted, deafened } => {
                (self.muted, self.deafened) = (muted, deafened);
                let tx = self.tx.clone();
                // Called on the media thread: never waits (a full outbox drops the frame).
                let out = Box::new(move |m: MediaOut| {
                    let _ = tx.try_send(m);
                });
                match MediaEngine::start(self.mic.clone(), self.speaker.clone(), self.processing, out) {
                    Ok(mut engine) => {
                        engine.send(MediaIn::Mute(muted));
                        engine.send(MediaIn::Deafen(deafened));
                        self.engine = Some(engine);
                        None
                    }
                    Err(e) => Some(format!("the media thread could not start: {e}")),
                }
            }
            MediaControl::Stop => {
                // Joining it waits for the devices to close: not on this thread.
                if let Some(engine) = self.engine.take() {
                    tokio::task::spawn_blocking(move || drop(engine));
                }
                None
            }
            MediaControl::PeerLeft(peer) => self.send(MediaIn::PeerLeft { peer }),
            MediaControl::Mute(on) => {
                self.muted = on;
                self.send(MediaIn::Mute(on))
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

/// Lists the sound system's devices on a blocking thread and sends the `devices` event (or an
/// error in words).
pub fn list_devices(events: mpsc::Sender<ClientEvent>) {
    tokio::task::spawn_blocking(move || {
        let event = match crate::media::audio_io::list_devices() {
            Ok(d) => ClientEvent::Devices {
                host: d.host,
                inputs: d.inputs.into_iter().map(|(n, desc)| [n, desc]).collect(),
                outputs: d.outputs.into_iter().map(|(n, desc)| [n, desc]).collect(),
                default_input: d.default_input,
                default_output: d.default_output,
            },
            Err(e) => ClientEvent::error("media", e),
        };
        let _ = events.blocking_send(event);
    });
}

/// One peer's stats in the front-ends' words.
pub fn stats_event(s: &PeerAudioStats, rtt_ms: Option<u64>) -> ClientEvent {
    ClientEvent::MediaStats {
        peer: s.peer.fingerprint().to_string(),
        rtt_ms,
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
