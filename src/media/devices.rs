//! Which microphone and speaker a call uses, as the user names them (`--mic`, `--speaker`,
//! Settings), and opening them. Missing devices are a normal case: the call goes on
//! receive-only or send-only, and the user is told so in words.

use std::path::PathBuf;
use std::str::FromStr;

use super::sources::{Microphone, NullSpeaker, Speaker, ToneMic, WavMic};

#[derive(Debug, Clone, PartialEq)]
pub enum MicChoice {
    /// `tone:HZ`: a sine at HZ (20–20000).
    Tone(f32),
    /// `wav:PATH`: a WAV file, looped.
    Wav(PathBuf),
    /// The system's default input.
    Default,
    /// An input device by name.
    Device(String),
    /// Send nothing.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpeakerChoice {
    Default,
    /// Plays nowhere, at a sound card's pace (tests, servers).
    Null,
    None,
    Device(String),
}

impl FromStr for MicChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(hz) = s.strip_prefix("tone:") {
            let hz: f32 = hz.parse().map_err(|_| format!("tone:{hz}: the frequency is not a number"))?;
            if !(20.0..=20_000.0).contains(&hz) {
                return Err(format!("tone:{hz}: pick a frequency between 20 and 20000 Hz"));
            }
            return Ok(Self::Tone(hz));
        }
        if let Some(path) = s.strip_prefix("wav:") {
            if path.is_empty() {
                return Err("wav: needs a file (wav:PATH)".into());
            }
            return Ok(Self::Wav(PathBuf::from(path)));
        }
        Ok(match s {
            "default" => Self::Default,
            "none" => Self::None,
            "" => return Err("name a microphone: tone:HZ, wav:PATH, default, none or a device".into()),
            name => Self::Device(name.to_string()),
        })
    }
}

impl FromStr for SpeakerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "default" => Self::Default,
            "null" => Self::Null,
            "none" => Self::None,
            "" => return Err("name a speaker: default, null, none or a device".into()),
            name => Self::Device(name.to_string()),
        })
    }
}

/// The devices a call opened, and what the user should hear about the ones it could not.
pub struct Opened {
    pub mic: Option<Box<dyn Microphone>>,
    /// The microphone is a sound card (a room, with echo and noise), not a synthetic source.
    pub mic_is_device: bool,
    pub speaker: Option<Box<dyn Speaker>>,
    pub problems: Vec<String>,
}

/// Opens the chosen devices (on the thread that will use them: a WAV file is read here).
pub fn open(mic: &MicChoice, speaker: &SpeakerChoice) -> Opened {
    let choice_of_mic = mic;
    let mut problems = Vec::new();
    let mic: Option<Box<dyn Microphone>> = match mic {
        MicChoice::Tone(hz) => Some(Box::new(ToneMic::new(*hz))),
        MicChoice::Wav(path) => match WavMic::open(path) {
            Ok(m) => Some(Box::new(m)),
            Err(e) => {
                problems.push(format!("{e}: the call goes on without sending audio"));
                None
            }
        },
        MicChoice::None => None,
        MicChoice::Default | MicChoice::Device(_) => match super::audio_io::open_input(mic) {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(format!("no microphone ({e}): the call goes on receive-only"));
                None
            }
        },
    };
    let speaker: Option<Box<dyn Speaker>> = match speaker {
        SpeakerChoice::Null => Some(Box::new(NullSpeaker::default())),
        SpeakerChoice::None => None,
        SpeakerChoice::Default | SpeakerChoice::Device(_) => match super::audio_io::open_output(speaker) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!("no speaker ({e}): the call goes on send-only"));
                None
            }
        },
    };
    let mic_is_device = mic.is_some() && matches!(choice_of_mic, MicChoice::Default | MicChoice::Device(_));
    Opened { mic, mic_is_device, speaker, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_as_the_user_writes_them_and_mistakes_say_what_is_wrong() {
        assert_eq!("tone:440".parse::<MicChoice>(), Ok(MicChoice::Tone(440.0)));
        assert_eq!("wav:/tmp/a.wav".parse::<MicChoice>(), Ok(MicChoice::Wav("/tmp/a.wav".into())));
        assert_eq!("none".parse::<MicChoice>(), Ok(MicChoice::None));
        assert_eq!("USB Headset".parse::<MicChoice>(), Ok(MicChoice::Device("USB Headset".into())));
        assert!("tone:abc".parse::<MicChoice>().unwrap_err().contains("not a number"));
        assert!("tone:5".parse::<MicChoice>().unwrap_err().contains("between 20"));
        assert!("wav:".parse::<MicChoice>().is_err());
        assert_eq!("null".parse::<SpeakerChoice>(), Ok(SpeakerChoice::Null));
        assert_eq!("default".parse::<SpeakerChoice>(), Ok(SpeakerChoice::Default));
    }

    #[test]
    fn a_missing_wav_file_leaves_the_call_receive_only_with_a_reason() {
        let opened = open(&MicChoice::Wav("/nonexistent/x.wav".into()), &SpeakerChoice::None);
        assert!(opened.mic.is_none() && opened.speaker.is_none());
        assert!(opened.problems[0].contains("/nonexistent/x.wav"), "{:?}", opened.problems);
    }
}
